"""What the console shows of each component, read from the components' own status sources.

Each part is read on its own: a component that cannot answer shows its error, the others still
show. Every part carries a `state` the page colours: `ok`, `warn` (works, needs a look) or `bad`.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
from confluent_kafka import KafkaException, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from outbox.errors import OutboxError
from outbox.urls import mask_url
from outboxkit.kafka import clients
from outboxkit.kafka.settings import KafkaSettings
from outboxkit.kv.status import KVStatusSource
from outboxkit.ops.status import JSON
from outboxkit.processors.processor import Processor
from outboxkit.processors.status import ProcessorStatusSource
from projectors.projector import Projector
from projectors.status import ProjectorStatus, ProjectorStatusSource
from projectors.tracking import OffsetStore
from relay.quarantine import list_quarantined
from relay.status import CdcStatusSource, RelayStatus, RelayStatusSource

log = logging.getLogger("outboxkit.console")

Part = dict[str, JSON]


@dataclass(frozen=True)
class Thresholds:
    stuck_after: float = 30.0
    """Seconds an unpublished event may wait before the relay counts as stuck."""
    lag: int = 1000
    """Records behind from which a projector counts as lagging."""


class ConsoleSources:
    """Reads every configured component; `read()` is called by one thread (state.Poller)."""

    def __init__(
        self,
        database_url: str,
        kafka: KafkaSettings,
        engine: Engine,
        *,
        relay: RelayStatusSource,
        cdc: CdcStatusSource | None,
        projectors: Sequence[Projector],
        processors: Sequence[Processor] = (),
        kv_topics: Sequence[str] = (),
        gateways: Sequence[str] = (),
        thresholds: Thresholds,
    ) -> None:
        self.database_url = database_url
        self.kafka = kafka
        self.engine = engine
        self.relay = relay
        self.cdc = cdc
        self.projectors = [(p, ProjectorStatusSource(p, engine, kafka)) for p in projectors]
        self.processors = [ProcessorStatusSource(p, kafka, database_url=database_url) for p in processors]
        self.kv = [KVStatusSource(topic, kafka) for topic in kv_topics]
        self.gateways = list(gateways)
        self.thresholds = thresholds

    def read(self) -> dict[str, JSON]:
        return {
            "at": time.time(),
            "relay": _guarded("relay", self._relay),
            "quarantine": _guarded("quarantine", self._quarantine),
            "cdc": None if self.cdc is None else _guarded("cdc", self._cdc),
            "projectors": [
                _guarded(p.name, functools.partial(self._projector, p, s)) for p, s in self.projectors
            ],
            "processors": [
                _guarded(s.processor.name, functools.partial(self._processor, s)) for s in self.processors
            ],
            "kv": [_guarded(s.topic, functools.partial(self._kv, s)) for s in self.kv],
            "gateways": [_guarded(url, functools.partial(gateway_part, url)) for url in self.gateways],
        }

    def _relay(self) -> Part:
        status: RelayStatus = self.relay.read()
        part = status.to_json()
        owned = bool(status.owners)
        if status.backlog and (not owned or status.oldest_unpublished_seconds > self.thresholds.stuck_after):
            part["state"] = "bad"
            part["summary"] = (
                f"stuck: {status.backlog} events wait, the oldest {status.oldest_unpublished_seconds:.0f} s"
                + ("" if owned else "; no relay owns a shard")
            )
        elif not owned:
            part["state"], part["summary"] = "warn", "no relay running (nothing waits)"
        else:
            part["state"], part["summary"] = "ok", f"{len(status.owners)} of {status.shards} shard(s) owned"
        return part

    def _quarantine(self) -> Part:
        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as conn:
            events = list_quarantined(conn, limit=100)
        return {
            "state": "bad" if events else "ok",
            "events": [e.to_json() for e in events],
            "summary": f"{len(events)} quarantined" if events else "empty",
        }

    def _cdc(self) -> Part:
        assert self.cdc is not None
        now = self.cdc.read()
        part = now.to_json()
        running = bool(now.connector and now.connector.running)
        part["state"] = "ok" if running else "bad"
        state = "not registered" if now.connector is None else now.connector.connector
        wal = f"; slot retains {now.slot.retained_bytes} bytes of WAL" if now.slot else "; no slot"
        part["summary"] = f"connector {now.connector_name} {state}{wal}"
        return part

    def _projector(self, projector: Projector, source: ProjectorStatusSource) -> Part:
        status: ProjectorStatus = source.read()
        part = status.to_json()
        part["dead_letters"] = self._dead_letters(projector)
        part["rebuild"] = self._rebuild(projector, status)
        lagging = status.total_lag >= self.thresholds.lag
        part["state"] = "bad" if lagging else ("warn" if part["dead_letters"] else "ok")
        part["summary"] = f"{status.total_lag} behind" + (
            f", {part['dead_letters']} dead-lettered" if part["dead_letters"] else ""
        )
        return part

    def _processor(self, source: ProcessorStatusSource) -> Part:
        status = source.read()
        part = status.to_json()
        hanging = part["hanging_transactions"]
        part["state"] = "bad" if status.total_lag >= self.thresholds.lag or hanging else "ok"
        part["summary"] = f"{status.total_lag} behind" + (
            f", {hanging} hanging transaction(s) pin the last stable offset" if hanging else ""
        )
        return part

    def _kv(self, source: KVStatusSource) -> Part:
        """A KV store's topic: its partitions and whether it is compacted (a reader's own state is
        on its daemon's endpoints)."""
        status = source.read()
        part = status.to_json()
        policy = status.compaction.get("cleanup.policy", "")
        records = sum(p.high - (p.low or 0) for p in status.partitions)
        if status.kafka_problem is not None:
            part["state"], part["summary"] = "bad", f"Kafka unreachable: {status.kafka_problem}"
        elif "compact" in policy.split(","):
            part["state"], part["summary"] = (
                "ok",
                f"{records} records on {len(status.partitions)} partition(s)",
            )
        else:
            part["state"] = "bad"
            part["summary"] = f"cleanup.policy={policy or '?'}: not compacted, deleted keys can come back"
        return part

    def _dead_letters(self, projector: Projector) -> int:
        """Records in the projector's dead-letter topics (an upper bound: transaction markers count)."""
        topics = {projector.config.dead_letter_topic.replace("{topic}", t) for t in projector.topics}
        consumer = clients.consumer(self.kafka, f"{projector.group_id}-console")
        try:
            present = consumer.list_topics(timeout=5).topics
            total = 0
            for topic in sorted(topics & set(present)):
                for partition in present[topic].partitions:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
                    total += high - low
            return total
        finally:
            consumer.close()

    def _rebuild(self, projector: Projector, status: ProjectorStatus) -> JSON:
        """A rebuild in progress keeps its offsets as `<name>@rebuild`: how far it has read."""
        with self.engine.connect() as conn:
            stored = OffsetStore(f"{projector.name}@rebuild").all(conn)
        if not stored:
            return None
        total = sum(p.high - p.low for p in status.partitions) or 1
        done = sum(min(stored.get((p.topic, p.partition), p.low), p.high) - p.low for p in status.partitions)
        return {"done": done, "total": total, "percent": round(100 * done / total, 1)}


def gateway_part(url: str) -> Part:
    """A gateway, through its own endpoints at `url` (`outbox gateway run --metrics-port`):
    /healthz, and the connection and message counts of /metrics."""
    base = url.rstrip("/")
    with httpx.Client(timeout=5) as client:
        health = client.get(f"{base}/healthz")
        metrics = client.get(f"{base}/metrics")
    metrics.raise_for_status()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics.text):
        for sample in family.samples:
            if sample.name in GATEWAY_SAMPLES:
                values[sample.name] = values.get(sample.name, 0.0) + sample.value
    body = health.json()
    part: Part = {
        "url": base,
        "health": body,
        "connections": int(values.get("outbox_gateway_connections", 0)),
        "pushed": int(values.get("outbox_gateway_messages_pushed_total", 0)),
        "drops": int(values.get("outbox_gateway_drops_total", 0)),
    }
    healthy = health.status_code == 200
    part["state"] = "ok" if healthy else "bad"
    part["summary"] = (
        f"{part['connections']} connection(s), {part['pushed']} pushed, {part['drops']} dropped"
        if healthy
        else f"{body.get('status')}: {body.get('reason')}"
    )
    return part


GATEWAY_SAMPLES = (
    "outbox_gateway_connections",
    "outbox_gateway_messages_pushed_total",
    "outbox_gateway_drops_total",
)


def _guarded(what: str, read: Callable[[], Part]) -> Part:
    try:
        return read()
    except (OutboxError, psycopg.Error, KafkaException, httpx.HTTPError) as err:
        return {"state": "bad", "error": mask_url(str(err)), "summary": f"{what}: cannot read"}
    except Exception as err:  # a bug: show it, log it, keep the console up
        log.exception("reading %s failed", what)
        return {"state": "bad", "error": f"{type(err).__name__}: {mask_url(str(err))}", "summary": "error"}


def describe(sources: ConsoleSources) -> dict[str, Any]:
    """What the console watches, for its header (secrets masked)."""
    return {
        "database": mask_url(sources.database_url),
        "kafka": sources.kafka.describe(),
        "projectors": [p.name for p, _ in sources.projectors],
        "processors": [s.processor.name for s in sources.processors],
        "kv": [s.topic for s in sources.kv],
        "gateways": list(sources.gateways),
        "cdc": sources.cdc.connector_name if sources.cdc else None,
    }
