"""The `site_summary` read model: one row per site, looked up by its primary key."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import ARRAY

from projectors.versioning import version_columns

metadata = sa.MetaData()
site_summary = sa.Table(
    "site_summary",
    metadata,
    sa.Column("site_id", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("installed_apps", ARRAY(sa.Text), nullable=False, server_default="{}"),
    *version_columns(),
)


def create_read_model(conn: Connection) -> None:
    """Create the read model's tables if missing (they belong to the example, not to Alembic)."""
    metadata.create_all(conn)


def site_summary_of(conn: Connection, site_id: str) -> dict[str, Any] | None:
    """The summary of one site: a primary-key lookup."""
    row = conn.execute(
        sa.select(
            site_summary.c.site_id,
            site_summary.c.owner,
            site_summary.c.version,
            site_summary.c.installed_apps,
        ).where(site_summary.c.site_id == site_id)
    ).first()
    return dict(row._mapping) if row is not None else None


def all_summaries(conn: Connection) -> dict[str, tuple[str, int, tuple[str, ...]]]:
    """Every site as (owner, version, installed apps): what tests compare with the expected state."""
    rows = conn.execute(
        sa.select(
            site_summary.c.site_id,
            site_summary.c.owner,
            site_summary.c.version,
            site_summary.c.installed_apps,
        )
    )
    return {site: (owner, version, tuple(apps)) for site, owner, version, apps in rows}
