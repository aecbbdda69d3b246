"""outbox_events (the transactional outbox) and outbox_published (kept events, retention=keep).

Revision ID: outboxkit_0001
Revises:
Create Date: 2026-11-26

Row identity: `id` is a bigint identity, the relay's read order. The polling relay publishes the
visible rows by `id` and deletes them, moving them to outbox_published under retention=keep (no
cursor, so a late commit is never skipped); publish() locks the aggregate before drawing an id,
so per aggregate, id order is commit order (see outbox/sql.py). `ce_id` is the event's UUIDv7,
unique: the consumers' idempotency key.
A uuid column is rendered by Debezium as the canonical lowercase string, as Python's str(UUID).

Envelope columns for both relays: header values whose rendering matters are stored as text
already rendered (`ce_time` RFC 3339), so the polling relay and Debezium's Outbox Event Router
(fixed columns -> headers via table.fields.additional.placement) send identical bytes. `payload`
is bytea: the Kafka value bytes exactly, whatever the serializer. User headers are a jsonb map.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "outboxkit_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("outboxkit",)
depends_on: str | Sequence[str] | None = None


def _event_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("ce_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("ce_type", sa.Text, nullable=False),
        sa.Column("ce_source", sa.Text, nullable=False),
        sa.Column("ce_time", sa.Text, nullable=False),
        sa.Column("aggregate_type", sa.Text, nullable=False),
        sa.Column("aggregate_id", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("content_type", sa.Text, nullable=False),
        sa.Column("payload", postgresql.BYTEA, nullable=False),
        sa.Column("headers", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("traceparent", sa.Text, nullable=True),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def upgrade() -> None:
    # Only unpublished events live here, so the relay's query (visible rows by id) is a short
    # primary-key scan and each insert maintains two indexes, no more.
    op.create_table(
        "outbox_events",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        *_event_columns(),
        sa.UniqueConstraint("ce_id", name="outbox_events_ce_id_key"),
    )
    # Retention=keep: the relay moves what it published here (in the transaction that deletes it
    # from outbox_events) and purges rows older than retention_days by published_at.
    op.create_table(
        "outbox_published",
        sa.Column("id", sa.BigInteger, primary_key=True),
        *_event_columns(),
        sa.Column("published_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("outbox_published_published_at", "outbox_published", ["published_at"])


def downgrade() -> None:
    op.drop_table("outbox_published")
    op.drop_table("outbox_events")
