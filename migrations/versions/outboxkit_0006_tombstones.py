"""An outbox row may carry no payload: a tombstone (outbox.TOMBSTONE), published as a Kafka record
with a null value, which deletes its key on a compacted topic (the KV store's).

Revision ID: outboxkit_0006
Revises: outboxkit_0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "outboxkit_0006"
down_revision = "outboxkit_0005"
branch_labels = None
depends_on = None

TABLES = ("outbox_events", "outbox_quarantine")


def upgrade() -> None:
    for table in TABLES:
        op.alter_column(table, "payload", nullable=True)


def downgrade() -> None:
    # A tombstone row cannot be kept without its NULL: the downgrade refuses while one is left.
    for table in TABLES:
        op.alter_column(table, "payload", nullable=False)
