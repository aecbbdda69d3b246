"""Projector tracking tables: stored offsets (the source of truth for positions) and applied event ids.

Revision ID: outboxkit_0003
Revises: outboxkit_0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "outboxkit_0003"
down_revision = "outboxkit_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projector_offsets",
        sa.Column("projector", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        # The next offset to apply: every record below it is reflected in the read model.
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        # The topic's partition count when the row was written; a change means keys moved.
        sa.Column("partition_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("projector", "topic", "partition", name="projector_offsets_pkey"),
    )
    op.create_table(
        "projector_applied_events",
        sa.Column("projector", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("projector", "event_id", name="projector_applied_events_pkey"),
    )
    # Rows arrive in applied_at order and are only read back to prune old ones: a BRIN index finds
    # them at a fraction of a B-tree's cost per insert (this table takes one row per event).
    op.create_index(
        "projector_applied_events_applied_at",
        "projector_applied_events",
        ["applied_at"],
        postgresql_using="brin",
    )


def downgrade() -> None:
    op.drop_index("projector_applied_events_applied_at", table_name="projector_applied_events")
    op.drop_table("projector_applied_events")
    op.drop_table("projector_offsets")
