"""Prometheus metrics of projectors, in a registry of the caller's choice (no global registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ProjectorMetrics:
    """Counters, gauges and histograms labelled by projector (and topic, partition)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.applied = Counter(
            "outbox_projector_events_applied",
            "Events applied to the read model.",
            ["projector", "topic"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "outbox_projector_duplicates_skipped",
            "Events skipped because their ce_id had been applied before.",
            ["projector", "topic"],
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "outbox_projector_dead_lettered",
            "Records sent to the dead-letter topic.",
            ["projector", "topic"],
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "outbox_projector_batch_seconds",
            "Time to apply one batch and store its offsets.",
            ["projector"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.lag = Gauge(
            "outbox_projector_lag",
            "Records between the stored offset and the high watermark.",
            ["projector", "topic", "partition"],
            registry=self.registry,
        )
