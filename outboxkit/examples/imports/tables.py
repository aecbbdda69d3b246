"""The example services' own tables (the toolkit's tables come from Alembic)."""

from __future__ import annotations

import sqlalchemy as sa

from projectors.versioning import version_columns

metadata = sa.MetaData()

jobs = sa.Table(
    "imports_demo_jobs",
    metadata,
    sa.Column("job_id", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("file_name", sa.Text, nullable=False),
    sa.Column("csv", sa.Text, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("imported", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)
"""The upload service's jobs; `imported` is the workers' progress (the chunk guard)."""

contacts = sa.Table(
    "imports_demo_contacts",
    metadata,
    # a serial key, not (job, row): a contact imported twice would show as two rows
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("job_id", sa.Text, nullable=False, index=True),
    sa.Column("row_number", sa.Integer, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("email", sa.Text, nullable=False),
)
"""The contacts the workers imported."""

job_status = sa.Table(
    "imports_demo_job_status",
    metadata,
    sa.Column("job_id", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False, index=True),
    sa.Column("file_name", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("imported", sa.Integer, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    *version_columns(),
)
"""The status projection, the table page loads read: one row per job with its version."""
