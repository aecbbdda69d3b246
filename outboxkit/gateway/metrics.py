"""The gateway's Prometheus metrics, in a registry of their own (served on /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.connections = Gauge(
            "outbox_gateway_connections",
            "Open WebSocket connections that sent a valid token.",
            registry=self.registry,
        )
        self.pushed = Counter(
            "outbox_gateway_messages_pushed",
            "Event messages written to connections (replays included).",
            registry=self.registry,
        )
        self.replayed = Counter(
            "outbox_gateway_messages_replayed",
            "Event messages sent from a resume's replay.",
            registry=self.registry,
        )
        self.drops = Counter(
            "outbox_gateway_drops",
            "Connections closed by the gateway, or records skipped, by reason"
            " (too_slow, token_invalid, token_expired, protocol_error, undecodable).",
            ["reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "outbox_gateway_delivery_latency_seconds",
            "From the record's Kafka timestamp to its write to a live connection.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.records = Counter(
            "outbox_gateway_records", "Records read from the status topics.", registry=self.registry
        )
