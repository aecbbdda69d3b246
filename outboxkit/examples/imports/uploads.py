"""An upload: the job row and its `import.requested` event in one transaction (the outbox)."""

from __future__ import annotations

import csv
import io
import uuid

from sqlalchemy import Connection

from outbox import Event
from outbox.errors import OutboxError
from outboxkit.examples.imports.flow import AGGREGATE, Flow
from outboxkit.examples.imports.tables import jobs

COLUMNS = ["name", "email"]


class UploadRefusedError(OutboxError):
    """A file that is not a contacts CSV (the page shows the message)."""


def parse_contacts(text: str) -> list[dict[str, str]]:
    """The rows of a CSV with the header `name,email`; UploadRefusedError saying what is wrong."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or [f.strip().lower() for f in reader.fieldnames] != COLUMNS:
        raise UploadRefusedError(f"the first line must be the header {','.join(COLUMNS)}")
    return [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in reader]


def request_import(conn: Connection, flow: Flow, user: str, file_name: str, text: str) -> dict[str, object]:
    """Store the job and publish `import.requested` in the caller's transaction (never commits)."""
    rows = parse_contacts(text)
    if not rows:
        raise UploadRefusedError("the file holds no contacts below its header")
    job_id = str(uuid.uuid4())
    conn.execute(
        jobs.insert().values(job_id=job_id, user_id=user, file_name=file_name, csv=text, total=len(rows))
    )
    payload = {"job_id": job_id, "user_id": user, "file_name": file_name, "imported": 0, "total": len(rows)}
    event = Event(type="import.requested", aggregate_type=AGGREGATE, aggregate_id=job_id, payload=payload)
    flow.outbox("imports-web").publish_many(conn, [event])
    return payload
