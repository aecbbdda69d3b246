"""The job-status projection: the table a page load reads, one row per job with its version."""

from __future__ import annotations

from sqlalchemy import Connection

from outboxkit.examples.imports.flow import Flow
from outboxkit.examples.imports.tables import job_status, metadata
from outboxkit.kafka.records import ReceivedEvent
from projectors.projector import Projector
from projectors.versioning import version_of, versioned_upsert

STATUS = {
    "import.requested": "requested",
    "import.progress": "importing",
    "import.completed": "completed",
    "import.failed": "failed",
}


def build_status(flow: Flow) -> Projector:
    projector = Projector(flow.name("job-status"), [flow.jobs_topic], metadata=metadata)
    upsert = versioned_upsert(job_status, ["job_id"])

    @projector.handles(*STATUS)
    def apply(event: ReceivedEvent, conn: Connection) -> None:
        job = event.payload
        row = {
            "job_id": job["job_id"],
            "user_id": job["user_id"],
            "file_name": job["file_name"],
            "status": STATUS[event.type],
            "imported": job["imported"],
            "total": job["total"],
            "error": job.get("error"),
            **version_of(event),
        }
        conn.execute(upsert, row)

    return projector


def status_from_env() -> Projector:
    """For `outbox projector run outboxkit.examples.imports.projection:status_from_env`."""
    return build_status(Flow.from_env())
