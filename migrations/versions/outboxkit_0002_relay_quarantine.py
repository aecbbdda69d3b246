"""outbox_quarantine: events Kafka refused for good, held out of the outbox with the reason.

Revision ID: outboxkit_0002
Revises: outboxkit_0001
Create Date: 2026-11-26

A quarantined row keeps its outbox `id`, so a requeue puts it back in its old place in the order.
While an aggregate has a row here, the polling relay leaves that aggregate's later events in the
outbox (relay/sql.py), so they can never overtake it; the index makes that check one probe.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "outboxkit_0002"
down_revision: str | None = "outboxkit_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox_quarantine",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("ce_id", postgresql.UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("ce_type", sa.Text, nullable=False),
        sa.Column("ce_source", sa.Text, nullable=False),
        sa.Column("ce_time", sa.Text, nullable=False),
        sa.Column("aggregate_type", sa.Text, nullable=False),
        sa.Column("aggregate_id", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("content_type", sa.Text, nullable=False),
        sa.Column("payload", postgresql.BYTEA, nullable=False),
        sa.Column("headers", postgresql.JSONB, nullable=False),
        sa.Column("traceparent", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column(
            "quarantined_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("outbox_quarantine_aggregate", "outbox_quarantine", ["aggregate_type", "aggregate_id"])


def downgrade() -> None:
    op.drop_table("outbox_quarantine")
