"""projector_dead_letters: the records a projector dead-lettered, remembered with the read model.

Revision ID: outboxkit_0005
Revises: outboxkit_0004
Create Date: 2026-12-02

A row is written in the transaction that stores the offset past the dead-lettered record. It keeps
the record (key, value, headers) so that `outbox projector dead-letters replay` can apply it after
a fix without reading the dead-letter topic, and it keeps a rebuild from publishing the same event
to the dead-letter topic again (projectors/apply.py). Keyed by the event's `ce_id`: a record that is
no outboxkit event (no `ce_id`) is not remembered.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "outboxkit_0005"
down_revision = "outboxkit_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projector_dead_letters",
        sa.Column("projector", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("key", postgresql.BYTEA(), nullable=True),
        sa.Column("value", postgresql.BYTEA(), nullable=True),
        sa.Column("header_names", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("header_values", postgresql.ARRAY(postgresql.BYTEA()), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("dead_letter_topic", sa.Text(), nullable=False),
        sa.Column(
            "dead_lettered_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("projector", "event_id", name="projector_dead_letters_pkey"),
    )


def downgrade() -> None:
    op.drop_table("projector_dead_letters")
