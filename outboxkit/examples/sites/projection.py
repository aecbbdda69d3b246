"""The projector that maintains `site_summary` from the sites service's events.

Run it: `outbox projector run outboxkit.examples.sites.projection:from_environment` (topic from
`SITES_TOPIC`, default `sites`). Every write is guarded by the row's version (partition, offset),
so a redelivered or replayed event changes nothing.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from sqlalchemy import Connection

from outboxkit.examples.sites.read_model import metadata, site_summary
from outboxkit.kafka.records import ReceivedEvent
from projectors.config import ProjectorConfig
from projectors.projector import Projector
from projectors.versioning import newer_than_row, version_of, versioned_upsert

NAME = "site-summary"


def build_projector(
    topic: str = "sites", *, name: str = NAME, config: ProjectorConfig | None = None
) -> Projector:
    """The site-summary projector reading `topic`."""
    projector = Projector(name, [topic], metadata=metadata, config=config)
    upsert_site = versioned_upsert(site_summary, ["site_id"], columns=["owner", "version"])

    @projector.handles("site.created")
    def created(event: ReceivedEvent, conn: Connection) -> None:
        site = event.payload
        conn.execute(
            upsert_site,
            {
                "site_id": event.subject,
                "owner": site["owner"],
                "version": site["version"],
                **version_of(event),
            },
        )

    @projector.handles("site.owner_changed")
    def owner_changed(event: ReceivedEvent, conn: Connection) -> None:
        update(conn, event, owner=event.payload["owner"])

    @projector.handles("app.installed")
    def app_installed(event: ReceivedEvent, conn: Connection) -> None:
        app = event.payload["app"]
        apps = site_summary.c.installed_apps
        update(conn, event, installed_apps=sa.func.array_append(sa.func.array_remove(apps, app), app))

    @projector.handles("app.uninstalled")
    def app_uninstalled(event: ReceivedEvent, conn: Connection) -> None:
        update(
            conn,
            event,
            installed_apps=sa.func.array_remove(site_summary.c.installed_apps, event.payload["app"]),
        )

    return projector


def update(conn: Connection, event: ReceivedEvent, **values: object) -> None:
    """Change a site's row if the event is newer than the row, and bump its version."""
    conn.execute(
        sa.update(site_summary)
        .where(site_summary.c.site_id == event.subject)
        .where(newer_than_row(site_summary, event.partition, event.offset))
        .values(version=event.payload["version"], **values, **version_of(event))
    )


def from_environment() -> Projector:
    """The projector for the topic in `SITES_TOPIC` (default `sites`), named by `SITES_PROJECTOR`."""
    return build_projector(
        os.environ.get("SITES_TOPIC", "sites"), name=os.environ.get("SITES_PROJECTOR", NAME)
    )
