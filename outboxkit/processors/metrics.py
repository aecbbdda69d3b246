"""Prometheus metrics of processors, in a registry of the caller's choice (no global registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ProcessorMetrics:
    """Counters, gauges and histograms labelled by processor."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.processed = Counter(
            "outbox_processor_inputs",
            "Input records handled (committed or not).",
            ["processor"],
            registry=self.registry,
        )
        self.outputs = Counter(
            "outbox_processor_outputs",
            "Output events produced (committed or not).",
            ["processor"],
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "outbox_processor_dead_lettered",
            "Inputs sent to the dead-letter topic.",
            ["processor"],
            registry=self.registry,
        )
        self.transactions = Counter(
            "outbox_processor_transactions",
            "Transactions by outcome (committed, aborted).",
            ["processor", "outcome"],
            registry=self.registry,
        )
        self.transaction_seconds = Histogram(
            "outbox_processor_transaction_seconds",
            "Time from a transaction's begin to its commit.",
            ["processor"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.lag = Gauge(
            "outbox_processor_lag",
            "Offsets between the committed position and the last stable offset.",
            ["processor", "topic", "partition"],
            registry=self.registry,
        )
