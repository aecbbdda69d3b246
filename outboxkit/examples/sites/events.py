"""What the sites service publishes, produced straight to Kafka in the outbox envelope (for tests and
benchmarks, until the service is wired to `publish()`), and the state those events should lead to."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from outboxkit.kafka import clients
from outboxkit.kafka.settings import KafkaSettings

SOURCE = "outboxkit.examples.sites"
APPS = ("blog", "shop", "forms", "chat", "events", "bookings", "gallery", "music")

Record = tuple[bytes, bytes, list[tuple[str, bytes]]]
"""(key, value, headers) of one Kafka record."""


def envelope(event_type: str, site_id: str, payload: dict[str, Any], event_id: str | None = None) -> Record:
    """A Kafka record of a site event, in the CloudEvents envelope (DESIGN.md)."""
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", (event_id or str(uuid.uuid4())).encode()),
        ("ce_type", event_type.encode()),
        ("ce_source", SOURCE.encode()),
        ("ce_time", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()),
        ("ce_subject", site_id.encode()),
        ("content-type", b"application/json"),
    ]
    return site_id.encode(), orjson.dumps({"site_id": site_id, **payload}), headers


@dataclass
class SitesHistory:
    """Random but consistent site histories, and the summary they should end in."""

    seed: int = 0
    records: list[Record] = field(default_factory=list)
    expected: dict[str, tuple[str, int, tuple[str, ...]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def generate(self, count: int, sites: int = 50) -> list[Record]:
        """`count` more events over at most `sites` sites; returns the new records."""
        new: list[Record] = []
        for _ in range(count):
            site_id = f"site-{self._random.randrange(sites):05d}"
            new.append(self._next_event(site_id))
        self.records.extend(new)
        return new

    def _next_event(self, site_id: str) -> Record:
        if site_id not in self.expected:
            owner = f"user-{self._random.randrange(1000)}"
            self.expected[site_id] = (owner, 1, ())
            return envelope("site.created", site_id, {"owner": owner, "version": 1})
        owner, version, apps = self.expected[site_id]
        version += 1
        choice = self._random.random()
        if choice < 0.2:
            owner = f"user-{self._random.randrange(1000)}"
            self.expected[site_id] = (owner, version, apps)
            return envelope("site.owner_changed", site_id, {"owner": owner, "version": version})
        app = self._random.choice(APPS)
        if app in apps:
            self.expected[site_id] = (owner, version, tuple(a for a in apps if a != app))
            return envelope("app.uninstalled", site_id, {"app": app, "version": version})
        self.expected[site_id] = (owner, version, (*apps, app))
        return envelope("app.installed", site_id, {"app": app, "version": version})


def emit(kafka: KafkaSettings | str, topic: str, records: list[Record]) -> None:
    """Produce records with an idempotent producer and wait until Kafka acknowledged all."""
    producer = clients.producer(kafka)
    failures: list[str] = []
    for key, value, headers in records:
        while True:
            try:
                producer.produce(
                    topic,
                    key=key,
                    value=value,
                    headers=list[tuple[str, str | bytes | None]](headers),
                    on_delivery=lambda err, _m: failures.append(str(err)) if err else None,
                )
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(60) or failures:
        raise RuntimeError(f"Kafka did not take the site events: {failures[:3] or 'timeout'}")
