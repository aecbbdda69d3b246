"""The configuration owner: its `site_config` table and the KV entry of each row change in one
database transaction, through the outbox, to the compacted topic `config.sites` (key = site id).
Removing a site publishes `outbox.TOMBSTONE`: readers see the key deleted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from outbox import TOMBSTONE, Event, Outbox, publish
from outboxkit.kafka import clients
from outboxkit.kafka.settings import KafkaSettings
from outboxkit.kv.topic import CompactionSettings, ensure_compacted_topic

TOPIC = "config.sites"
CONFIG_OUTBOX = Outbox(source="outboxkit.examples.config")


class Base(DeclarativeBase):
    pass


class SiteConfig(Base):
    """The owner's own table: one row per site."""

    __tablename__ = "site_config"

    site: Mapped[str] = mapped_column(String(60), primary_key=True)
    theme: Mapped[str] = mapped_column(String(40))
    locale: Mapped[str] = mapped_column(String(20))
    features: Mapped[list[str]] = mapped_column(ARRAY(String(40)), default=list)

    def as_value(self) -> dict[str, Any]:
        """The KV value readers get for this site."""
        return {"theme": self.theme, "locale": self.locale, "features": list(self.features)}


def create_topic(kafka: KafkaSettings | str) -> None:
    """The compacted topic the outbox feeds (the relay publishes to it, it does not create it)."""
    ensure_compacted_topic(clients.admin(kafka), TOPIC, partitions=3, compaction=CompactionSettings())


def set_config(session: Session, site: str, *, theme: str, locale: str, features: list[str]) -> SiteConfig:
    """Create or change a site's configuration, and its KV entry, in the session's transaction."""
    row = session.get(SiteConfig, site) or SiteConfig(site=site)
    row.theme, row.locale, row.features = theme, locale, features
    session.add(row)
    event = Event(
        type="site.config.set",
        aggregate_type="site_config",
        aggregate_id=site,
        payload=row.as_value(),
        topic=TOPIC,
    )
    publish(session, event, outbox=CONFIG_OUTBOX)
    return row


def remove_site(session: Session, site: str) -> None:
    """Delete a site's row and its KV entry (a tombstone), in the session's transaction."""
    row = session.get(SiteConfig, site)
    if row is not None:
        session.delete(row)
    event = Event(
        type="site.config.removed",
        aggregate_type="site_config",
        aggregate_id=site,
        payload=TOMBSTONE,
        topic=TOPIC,
    )
    publish(session, event, outbox=CONFIG_OUTBOX)
