"""outbox_events: the transactional outbox table.

Revision ID: outboxkit_0001
Revises:
Create Date: 2026-11-26

Row identity: `id` is a bigint identity, the relay's read order. The polling relay publishes the
visible unpublished rows by `id` and deletes or marks them (no cursor, so a late commit is never
skipped); publish() locks the aggregate before drawing an id, so per aggregate, id order is commit
order (see outbox/sql.py). `ce_id` is the event's UUIDv7, unique: the consumers' idempotency key.
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


def upgrade() -> None:
    op.create_table(
        "outbox_events",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
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
        # Set by the relay under retention=keep; rows with a value are published and wait for purge.
        sa.Column("published_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.UniqueConstraint("ce_id", name="outbox_events_ce_id_key"),
    )
    # The relay's query: unpublished rows in id order. Under retention=delete every row is
    # unpublished and this mirrors the primary key; under retention=keep it skips kept rows.
    op.create_index(
        "outbox_events_unpublished",
        "outbox_events",
        ["id"],
        postgresql_where=sa.text("published_at IS NULL"),
    )
    # The relay's purge under retention=keep.
    op.create_index(
        "outbox_events_published_at",
        "outbox_events",
        ["published_at"],
        postgresql_where=sa.text("published_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("outbox_events")
