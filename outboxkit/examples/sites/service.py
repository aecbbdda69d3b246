"""The sites service: a Site aggregate (owner, version, installed apps) whose every change is recorded
as an event through the outbox mixin, in the transaction that changes the row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from outbox import AggregateRoot, Outbox, TopicRouter

TOPIC = "sites"
SITES_OUTBOX = Outbox(source="outboxkit.examples.sites", router=TopicRouter(TOPIC))


class Base(DeclarativeBase):
    pass


class Site(AggregateRoot, Base):
    """The sites service's own table (its write model); readers use the `site_summary` projection."""

    __tablename__ = "sites"
    __outbox_aggregate_type__ = "site"
    __outbox__ = SITES_OUTBOX

    id: Mapped[str] = mapped_column(String(60), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer, default=1)
    apps: Mapped[list[str]] = mapped_column(ARRAY(String(40)), default=list)

    @classmethod
    def create(cls, site_id: str, owner: str) -> Site:
        site = cls(id=site_id, owner=owner, version=1, apps=[])
        site._changed("site.created", owner=owner)
        return site

    def change_owner(self, owner: str) -> None:
        self.owner = owner
        self._bump("site.owner_changed", owner=owner)

    def install(self, app: str) -> None:
        self.apps = [*(a for a in self.apps if a != app), app]
        self._bump("app.installed", app=app)

    def uninstall(self, app: str) -> None:
        self.apps = [a for a in self.apps if a != app]
        self._bump("app.uninstalled", app=app)

    def _bump(self, event_type: str, **data: Any) -> None:
        self.version += 1
        self._changed(event_type, **data)

    def _changed(self, event_type: str, **data: Any) -> None:
        self.record({"site_id": self.id, "version": self.version, **data}, type=event_type)
