"""Names of the outbox table and its columns; the DDL itself lives in the Alembic migrations."""

from __future__ import annotations

TABLE = "outbox_events"
"""The outbox table (in the connection's search_path, normally `public`)."""

VERSION_TABLE = "outbox_alembic_version"
"""Alembic's version table when `outbox migrate` runs our migrations on their own."""

BRANCH_LABEL = "outboxkit"
"""Alembic branch label of our migrations, for a service's own Alembic environment."""

TABLES = frozenset(
    {
        TABLE,
        "outbox_quarantine",
        "projector_offsets",
        "projector_applied_events",
        "projector_dead_letters",
        VERSION_TABLE,
    }
)
"""Every table outboxkit's migrations (and `outbox migrate`) create: what a service's Alembic
autogenerate must leave alone (outbox.autogenerate)."""

RUN_MIGRATIONS = (
    "run outboxkit's migrations on this database: `outbox migrate upgrade`, or `alembic upgrade heads` "
    "in your own Alembic environment that includes them (docs/write-side.md)"
)
"""What every component says when one of our tables is missing."""

INSERT_COLUMNS = (
    "ce_id",
    "ce_type",
    "ce_source",
    "ce_time",
    "aggregate_type",
    "aggregate_id",
    "topic",
    "content_type",
    "payload",
    "headers",
    "traceparent",
)
"""Columns publish() fills; `id`, `created_at` (the database's) and `published_at` (the relay's) stay."""
