"""Prometheus metrics and the heartbeat of one relay (own registry: no global state).

outboxkit.ops serves both (/metrics, /healthz) and the relay's status source (/status.json).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from outboxkit.ops.health import Heartbeat
from outboxkit.ops.status import JSON


class RelayMetrics:
    def __init__(self, stale_after: float = 30.0) -> None:
        """`stale_after`: seconds without a turn of the loop after which /healthz answers 503."""
        self.registry = CollectorRegistry()
        r = self.registry
        self.published = Counter("outbox_relay_published", "Events Kafka acknowledged", registry=r)
        self.batch_seconds = Histogram(
            "outbox_relay_batch_seconds",
            "Read + publish + finish of one batch",
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.errors = Counter("outbox_relay_errors", "Failures by kind", ["kind"], registry=r)
        self.quarantined = Counter("outbox_relay_quarantined", "Events moved to quarantine", registry=r)
        self.backlog = Gauge("outbox_relay_backlog_events", "Unpublished events in the outbox", registry=r)
        self.oldest_age = Gauge(
            "outbox_relay_oldest_unpublished_seconds", "Age of the oldest unpublished event", registry=r
        )
        self.quarantine_size = Gauge(
            "outbox_relay_quarantine_events", "Events waiting in quarantine", registry=r
        )
        self.owned_shards = Gauge("outbox_relay_owned_shards", "Shards this relay publishes", registry=r)
        self.heartbeat = Heartbeat(stale_after)

    def beat(self, status: str = "ok", reason: str | None = None, **fields: JSON) -> None:
        """Called by the relay loop on every turn (ok) and on trouble (degraded, failed, with the
        reason); /healthz is unhealthy unless the last beat is ok and recent."""
        self.heartbeat.beat(status, reason, **fields)
