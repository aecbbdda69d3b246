"""Prometheus metrics of one KV reader, read from it at scrape time (own registry by default).

- `outbox_kv_keys`, `outbox_kv_bytes`: keys held, and bytes of their keys and values;
- `outbox_kv_lag_offsets{partition}`: offsets between the applied position and the end last seen;
- `outbox_kv_load_seconds`: how long loading took (absent until ready); `outbox_kv_ready`;
- `outbox_kv_kafka_reachable`: 0 while the reader cannot reach Kafka (it serves what it has), else 1;
- `outbox_kv_updates_total`, `outbox_kv_skipped_total`: changes applied, bad records skipped
  (`rate()` of the first is updates/s); `outbox_kv_updates_per_second`: the same over 10 s.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from outboxkit.kv.reader import KVStore


class KVMetrics(Collector):
    """Registers itself in `registry` (a new one when None)."""

    def __init__(self, reader: KVStore, registry: CollectorRegistry | None = None) -> None:
        self.reader = reader
        self.registry = registry if registry is not None else CollectorRegistry()
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        reader, labels = self.reader, ["topic"]
        topic = [reader.topic]
        keys = GaugeMetricFamily("outbox_kv_keys", "Keys held", labels=labels)
        keys.add_metric(topic, len(reader))
        size = GaugeMetricFamily("outbox_kv_bytes", "Bytes of the keys and values held", labels=labels)
        size.add_metric(topic, reader.store.size_bytes())
        lag = GaugeMetricFamily(
            "outbox_kv_lag_offsets",
            "Offsets between applied and the end last seen",
            labels=[*labels, "partition"],
        )
        for partition, behind in sorted(reader.lag().items()):
            lag.add_metric([reader.topic, str(partition)], behind)
        ready = GaugeMetricFamily("outbox_kv_ready", "1 once loaded", labels=labels)
        ready.add_metric(topic, 1.0 if reader.ready else 0.0)
        updates = CounterMetricFamily(
            "outbox_kv_updates", "Changes applied (puts and deletes)", labels=labels
        )
        updates.add_metric(topic, reader.applied)
        skipped = CounterMetricFamily(
            "outbox_kv_skipped", "Records skipped (no key, undecodable)", labels=labels
        )
        skipped.add_metric(topic, reader.skipped)
        rate = GaugeMetricFamily(
            "outbox_kv_updates_per_second", "Changes applied per second (10 s)", labels=labels
        )
        rate.add_metric(topic, reader.updates_per_second())
        reachable = GaugeMetricFamily(
            "outbox_kv_kafka_reachable", "0 while Kafka is unreachable (reads go on), else 1", labels=labels
        )
        reachable.add_metric(topic, 1.0 if reader.kafka_reachable else 0.0)
        yield from (keys, size, lag, ready, updates, skipped, rate, reachable)
        if reader.load_seconds is not None:
            load = GaugeMetricFamily("outbox_kv_load_seconds", "How long loading took", labels=labels)
            load.add_metric(topic, reader.load_seconds)
            yield load
