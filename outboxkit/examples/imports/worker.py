"""The import workers: a processor in mode database, run as several instances (a consumer group).

A job is imported one chunk per input event: `import.requested` starts it, and each
`import.progress` the workers publish (through the outbox, the relay, the job's partition) carries
the next chunk. One chunk is one PostgreSQL transaction: its contacts, the job's progress, the next
status event and the input positions commit together, so a worker killed at any moment leaves
either the whole chunk or nothing, and whichever worker owns the partition next goes on.

`jobs.imported` guards each chunk as well (the update must find the chunk's start): an input
handled again after its positions were reset (a replay) imports nothing twice.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from outboxkit.examples.imports.flow import AGGREGATE, Flow
from outboxkit.examples.imports.tables import contacts, jobs
from outboxkit.examples.imports.uploads import parse_contacts
from outboxkit.processors import Context, Processor, ProcessorConfig, ReceivedEvent


def build_workers(flow: Flow) -> Processor:
    config = ProcessorConfig(output_topic=flow.topic_template)
    processor = Processor(flow.name("workers"), [flow.jobs_topic], mode="database", config=config)

    @processor.handles("import.requested", "import.progress")
    def import_chunk(event: ReceivedEvent, context: Context) -> None:
        conn = context.connection
        assert conn is not None
        job_id, start = event.payload["job_id"], int(event.payload["imported"])
        found = conn.execute(
            sa.select(jobs.c.csv, jobs.c.total, jobs.c.imported).where(jobs.c.job_id == job_id)
        )
        job = found.one_or_none()
        if job is None or job.imported != start or start >= job.total:
            return  # handled before (a replay), or nothing left
        rows = parse_contacts(job.csv)[start : start + flow.chunk]
        status = {k: event.payload[k] for k in ("job_id", "user_id", "file_name", "total")}
        for number, row in enumerate(rows, start=start + 1):
            if "@" not in row.get("email", ""):
                failure = f"row {number}: {row.get('email')!r} is not an email address"
                context.emit(
                    "import.failed", {**status, "imported": start, "error": failure}, aggregate_type=AGGREGATE
                )
                return
        if flow.chunk_delay:
            time.sleep(flow.chunk_delay)
        conn.execute(
            contacts.insert(),
            [{"job_id": job_id, "row_number": n, **row} for n, row in enumerate(rows, start=start + 1)],
        )
        done = start + len(rows)
        moved = conn.execute(
            sa.update(jobs).where(jobs.c.job_id == job_id, jobs.c.imported == start).values(imported=done)
        ).rowcount
        assert moved == 1, "the job's progress moved under this transaction"
        kind = "import.completed" if done >= job.total else "import.progress"
        context.emit(kind, {**status, "imported": done}, aggregate_type=AGGREGATE)

    return processor


def workers_from_env() -> Processor:
    """For `outbox processor run outboxkit.examples.imports.worker:workers_from_env` (IMPORTS_...)."""
    return build_workers(Flow.from_env())
