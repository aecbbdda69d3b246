"""Processor offsets: where a mode-database processor stands, stored with what its handlers wrote.

Revision ID: outboxkit_0004
Revises: outboxkit_0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "outboxkit_0004"
down_revision = "outboxkit_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "processor_offsets",
        sa.Column("processor", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        # The next offset to handle: every input below it is committed with its effects.
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("processor", "topic", "partition", name="processor_offsets_pkey"),
    )


def downgrade() -> None:
    op.drop_table("processor_offsets")
