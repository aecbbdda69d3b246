"""Where a KV store stands: its topic (partitions, log start and end, compaction settings) and,
when there is one, a running reader (ready, keys, bytes, lag) or a disk store's checkpoint
(whether a restart would read on from it, or why it would rebuild).

`KVStatusSource` is the KV store's outboxkit.ops StatusSource: `outbox kv status` and a service's
/status.json read it. Each `snapshot()` asks Kafka for the partitions' ends. When Kafka cannot be
reached (or the reader already knows it cannot), the status says so (`kafka_problem`,
`unreachable_since`) and shows what is known locally: the reader's positions and the ends it last
saw, or a disk store's checkpoint; a running reader keeps serving its reads meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from outboxkit.kafka import clients
from outboxkit.kafka.admin import partition_counts, topic_config, topic_id
from outboxkit.kafka.catchup import watermarks
from outboxkit.kafka.errors import KafkaUnavailableError
from outboxkit.kafka.settings import KafkaSettings
from outboxkit.kv.checkpoint import distrust, retention_of
from outboxkit.kv.reader import KVStore
from outboxkit.kv.stores.base import Store
from outboxkit.ops.status import JSON

COMPACTION_KEYS = ("cleanup.policy", "segment.ms", "min.compaction.lag.ms", "delete.retention.ms")


@dataclass(frozen=True)
class PartitionStatus:
    partition: int
    low: int | None
    """None while Kafka is unreachable."""
    high: int
    """While Kafka is unreachable: the end the reader last saw (its checkpoint's position without one)."""
    position: int | None
    """Next offset the reader (or the disk store's checkpoint) applies; None: neither is there."""

    @property
    def lag(self) -> int | None:
        return None if self.position is None else max(self.high - self.position, 0)


@dataclass(frozen=True)
class KVStatus:
    topic: str
    topic_id: str
    partitions: list[PartitionStatus]
    compaction: dict[str, str]
    keys: int | None = None
    bytes: int | None = None
    reader: dict[str, JSON] = field(default_factory=dict)
    """ready, loaded_from, load_seconds, applied, skipped, updates_per_second, error (a reader)."""
    checkpoint: dict[str, JSON] = field(default_factory=dict)
    """saved_at, age_seconds, trusted, reason (a disk store)."""
    kafka_problem: str | None = None
    """Why Kafka could not be asked (the figures are the local ones then); None when it answered."""
    unreachable_since: float | None = None
    """Since when the reader cannot reach Kafka (seconds since the epoch), when it knows."""

    @property
    def total_lag(self) -> int | None:
        lags = [p.lag for p in self.partitions]
        return None if any(lag is None for lag in lags) else sum(lag or 0 for lag in lags)

    def to_json(self) -> dict[str, JSON]:
        return {
            "topic": self.topic,
            "topic_id": self.topic_id,
            "partitions": [
                {"partition": p.partition, "low": p.low, "high": p.high, "position": p.position, "lag": p.lag}
                for p in self.partitions
            ],
            "total_lag": self.total_lag,
            "compaction": dict(self.compaction),
            "keys": self.keys,
            "bytes": self.bytes,
            "reader": dict(self.reader),
            "checkpoint": dict(self.checkpoint),
            "kafka_reachable": self.kafka_problem is None,
            "kafka_problem": self.kafka_problem,
            "unreachable_since": self.unreachable_since,
        }

    def line(self) -> str:
        """One status line for people."""
        parts = [f"kv {self.topic}: {len(self.partitions)} partitions"]
        if self.kafka_problem is not None:
            since = ""
            if self.unreachable_since is not None:
                at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.unreachable_since))
                since = f" since {at} UTC ({time.time() - self.unreachable_since:.0f} s)"
            served = "; reads go on from the local store" if self.reader else ""
            parts.append(f"KAFKA UNREACHABLE{since}: {self.kafka_problem}{served}")
        if self.keys is not None:
            parts.append(f"{self.keys} keys, {self.bytes} bytes")
        if self.reader:
            parts.append("ready" if self.reader.get("ready") else "loading")
        if self.total_lag is not None and self.partitions:
            parts.append(f"lag {self.total_lag}")
        if self.checkpoint:
            trusted = self.checkpoint.get("trusted")
            parts.append(
                "checkpoint usable"
                if trusted
                else f"checkpoint would be discarded: {self.checkpoint.get('reason')}"
            )
        settings = [f"{k}={self.compaction[k]}" for k in COMPACTION_KEYS if k in self.compaction]
        if settings:
            parts.append(", ".join(settings))
        return "; ".join(parts)


class KVStatusSource:
    """The status of `topic`, with a running `reader` or a `store` (e.g. a read-only DiskStore)."""

    def __init__(
        self,
        topic: str,
        kafka: KafkaSettings | str,
        *,
        reader: KVStore | None = None,
        store: Store | None = None,
    ) -> None:
        self.topic = topic
        self.kafka = kafka
        self.reader = reader
        self.store = reader.store if reader is not None else store

    def read(self, timeout: float = 5.0) -> KVStatus:
        """Ask Kafka (each request within `timeout` s), or say why it could not be asked."""
        reader = self._reader_state()
        if self.reader is not None and not self.reader.kafka_reachable:  # known: no need to wait
            return self._local(reader, self.reader.kafka_problem or "unreachable")
        try:
            admin = clients.admin(self.kafka)
            consumer = clients.consumer(self.kafka, "outboxkit-kv-status")
            try:
                count = partition_counts(consumer, [self.topic], timeout=timeout)[self.topic]
                bounds = watermarks(consumer, [(self.topic, p) for p in range(count)], timeout=timeout)
            finally:
                consumer.close()
            config = topic_config(admin, self.topic, timeout=timeout)
            current_id = topic_id(admin, self.topic, timeout=timeout)
        except KafkaUnavailableError as err:
            return self._local(reader, str(err))
        positions: Mapping[int, int] = self.reader.positions if self.reader is not None else {}
        checkpoint: dict[str, JSON] = {}
        saved = self.store.checkpoint() if self.store is not None else None
        if saved is not None:
            now = time.time()
            reason = distrust(
                saved,
                topic_id=current_id,
                bounds={p: b for (_t, p), b in bounds.items()},
                delete_retention_ms=retention_of(config),
                now=now,
            )
            checkpoint = {
                "saved_at": saved.saved_at,
                "age_seconds": round(now - saved.saved_at, 1),
                "trusted": reason is None,
                "reason": reason,
            }
            positions = positions or saved.positions
        return KVStatus(
            topic=self.topic,
            topic_id=current_id,
            partitions=[
                PartitionStatus(p, low, high, positions.get(p))
                for (_t, p), (low, high) in sorted(bounds.items())
            ],
            compaction={k: config[k] for k in COMPACTION_KEYS if k in config},
            keys=None if self.store is None else len(self.store),
            bytes=None if self.store is None else self.store.size_bytes(),
            reader=reader,
            checkpoint=checkpoint,
        )

    def _reader_state(self) -> dict[str, JSON]:
        if self.reader is None:
            return {}
        error = self.reader.error
        return {
            "ready": self.reader.ready,
            "loaded_from": self.reader.loaded_from,
            "load_seconds": self.reader.load_seconds,
            "applied": self.reader.applied,
            "skipped": self.reader.skipped,
            "updates_per_second": round(self.reader.updates_per_second(), 1),
            "error": None if error is None else str(error),
            "kafka_reachable": self.reader.kafka_reachable,
            "unreachable_since": self.reader.unreachable_since,
            "kafka_problem": self.reader.kafka_problem,
            "store": dict(self.reader.store.describe()),
        }

    def _local(self, reader: dict[str, JSON], problem: str) -> KVStatus:
        """What is known without Kafka: the reader's positions and last seen ends, or the
        checkpoint's positions (whether a restart would trust it cannot be told)."""
        if self.reader is not None:
            positions, ends = self.reader.positions, self.reader.lag()
            ends = {p: positions.get(p, 0) + behind for p, behind in ends.items()}
        else:
            saved = self.store.checkpoint() if self.store is not None else None
            positions = dict(saved.positions) if saved is not None else {}
            ends = dict(positions)
        return KVStatus(
            topic=self.topic,
            topic_id="",
            partitions=[PartitionStatus(p, None, ends[p], positions.get(p)) for p in sorted(ends)],
            compaction={},
            keys=None if self.store is None else len(self.store),
            bytes=None if self.store is None else self.store.size_bytes(),
            reader=reader,
            kafka_problem=problem,
            unreachable_since=None if self.reader is None else self.reader.unreachable_since,
        )

    def snapshot(self) -> Mapping[str, JSON]:
        return self.read().to_json()
