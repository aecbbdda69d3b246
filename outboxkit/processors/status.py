"""Where a processor stands per input partition, and transactions that hold a partition back.

Position: the group's committed offset (mode kafka) or the stored one (mode database). Stable: the
partition's last stable offset (LSO, the end a read_committed reader sees); end: its high
watermark. Lag is stable less position (offsets: commit markers after the position count, the
running processor commits past them when idle). When stable < end a transaction is open on the
partition; one whose first record is older than `hanging_after` is reported as hanging: it pins
the LSO, and every read_committed reader of the partition (this processor too) waits for it.
A transaction may also hold the group's committed offsets of a partition (it sent offsets and has
not ended): the position shown is then the last committed one, `offsets_held` is set, and an
instance taking the partition waits until that transaction ends.

`ProcessorStatusSource` is the processors' outboxkit.ops StatusSource.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from outboxkit.kafka import clients
from outboxkit.kafka.admin import held_offsets, offsets_partition_of, partition_counts
from outboxkit.kafka.records import Partition
from outboxkit.kafka.settings import KafkaSettings
from outboxkit.ops.status import JSON, StatusUnavailableError
from outboxkit.processors.processor import Processor


@dataclass(frozen=True)
class PartitionStatus:
    topic: str
    partition: int
    position: int | None
    """Next offset to handle; None: never committed or stored."""
    low: int
    stable: int
    end: int
    open_seconds: float | None = None
    """Age of the open transaction at `stable` (its first record's timestamp), when there is one."""
    hanging: bool = False
    offsets_held: bool = False
    """An open transaction holds the group's committed offset of this partition (mode kafka)."""

    @property
    def lag(self) -> int:
        return max(self.stable - max(self.position or 0, self.low), 0)

    def to_json(self) -> dict[str, JSON]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "position": self.position,
            "low": self.low,
            "stable": self.stable,
            "end": self.end,
            "lag": self.lag,
            "open_transaction_seconds": self.open_seconds,
            "hanging_transaction": self.hanging,
            "offsets_held": self.offsets_held,
        }


@dataclass(frozen=True)
class ProcessorStatus:
    processor: str
    mode: str
    group: str
    partitions: tuple[PartitionStatus, ...]
    offsets_partition: int | None = None
    """The partition of __consumer_offsets that keeps the group's offsets (mode kafka): the
    producers of a transaction that holds them are found there (kafka-transactions.sh)."""

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    def to_json(self) -> dict[str, JSON]:
        return {
            "processor": self.processor,
            "mode": self.mode,
            "group": self.group,
            "total_lag": self.total_lag,
            "hanging_transactions": sum(p.hanging for p in self.partitions),
            "offsets_held": sum(p.offsets_held for p in self.partitions),
            "offsets_partition": self.offsets_partition,
            "partitions": [p.to_json() for p in self.partitions],
        }


class ProcessorStatusSource:
    """A processor's StatusSource: asks Kafka (and, mode database, the database) on each read."""

    def __init__(
        self,
        processor: Processor,
        kafka: KafkaSettings | str,
        *,
        database_url: str | None = None,
        hanging_after: float = 60.0,
        timeout: float = 10.0,
    ) -> None:
        self.processor = processor
        self.kafka = KafkaSettings.of(kafka)
        self.database_url = database_url
        self.hanging_after = hanging_after
        self.timeout = timeout

    def read(self) -> ProcessorStatus:
        group = self.processor.group_id
        committed = clients.consumer(self.kafka, group)
        uncommitted = clients.consumer(self.kafka, group, {"isolation.level": "read_uncommitted"})
        try:
            counts = partition_counts(committed, self.processor.topics, self.timeout)
            partitions = [(t, p) for t, n in sorted(counts.items()) for p in range(n)]
            positions = self._positions(uncommitted, partitions)
            held = set(self._held(partitions))
            kept_in = None if self.processor.mode == "database" else offsets_partition_of(committed, group)
            rows = []
            for tp in partitions:
                low, stable = committed.get_watermark_offsets(TopicPartition(*tp), timeout=self.timeout)
                _low, end = uncommitted.get_watermark_offsets(TopicPartition(*tp), timeout=self.timeout)
                age = self._open_age(uncommitted, tp, stable) if stable < end else None
                hanging = age is not None and age >= self.hanging_after
                row = PartitionStatus(*tp, positions.get(tp), low, stable, end, age, hanging, tp in held)
                rows.append(row)
        except Exception as err:
            raise StatusUnavailableError(f"status of processor {self.processor.name!r}: {err}") from err
        finally:
            committed.close()
            uncommitted.close()
        return ProcessorStatus(self.processor.name, self.processor.mode, group, tuple(rows), kept_in)

    def snapshot(self) -> Mapping[str, JSON]:
        return self.read().to_json()

    def _positions(self, consumer: Consumer, partitions: list[Partition]) -> dict[Partition, int]:
        if self.processor.mode == "database":
            from outboxkit.processors.database_mode import stored_positions

            assert self.database_url is not None, "mode database needs the database URL"
            return stored_positions(self.processor, self.database_url)
        # Read uncommitted: no require_stable, so offsets an open transaction holds do not make
        # the read wait; the answer is the last committed offsets.
        found = consumer.committed([TopicPartition(*tp) for tp in partitions], timeout=self.timeout)
        return {(f.topic, f.partition): f.offset for f in found if f.offset >= 0}

    def _held(self, partitions: list[Partition]) -> list[Partition]:
        if self.processor.mode == "database":  # its offsets are in the database
            return []
        return held_offsets(clients.admin(self.kafka), self.processor.group_id, partitions, self.timeout)

    def _open_age(self, consumer: Consumer, tp: Partition, stable: int) -> float | None:
        """Seconds since the first record of the transaction open at `stable` was written."""
        consumer.assign([TopicPartition(tp[0], tp[1], stable)])
        try:
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is not None and message.error() is None:
                    _kind, stamp = message.timestamp()
                    return max(time.time() - stamp / 1000, 0.0)
            return None
        finally:
            consumer.unassign()
