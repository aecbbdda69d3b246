"""Where a projector stands: stored offset, high watermark and lag per partition.

Lag is records not applied yet. On a transactional topic the offsets after the stored one also
hold commit markers and aborted records, which are never applied: counted as offsets, a projector
that applied everything would show a lag of one marker per partition. So the gap starts where the
projector's consumer has read to (the runner commits its position past such offsets to Kafka, for
monitoring), and a short gap (up to `EXACT_LAG_UP_TO` offsets) is read and its committed records
counted; a longer one is given in offsets, an upper bound.

`ProjectorStatusSource` is the projectors' outboxkit.ops StatusSource: `outbox projector status`,
the projector daemon's /status.json and the operator console read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from confluent_kafka import TopicPartition
from sqlalchemy import Engine

from outboxkit.kafka import clients
from outboxkit.kafka.admin import partition_counts
from outboxkit.kafka.catchup import read_to_end
from outboxkit.kafka.settings import KafkaSettings
from outboxkit.ops.status import JSON
from projectors.database import driver_errors
from projectors.metrics import ProjectorMetrics
from projectors.projector import Projector
from projectors.tracking import OffsetStore

EXACT_LAG_UP_TO = 1000
"""Gaps up to this many offsets per partition are read to count their records exactly."""


@dataclass(frozen=True)
class PartitionStatus:
    """One partition of one topic. `next_offset` is None when the projector never owned it."""

    topic: str
    partition: int
    next_offset: int | None
    low: int
    high: int
    behind: int | None = None
    """Committed records after the stored offset, when they were counted (a short gap)."""
    passed: int | None = None
    """How far the projector's consumer has read past its stored offset over records that are
    never applied (markers, aborted transactions), as the runner commits it to Kafka."""

    @property
    def start(self) -> int:
        """Where the projector reads next: its stored offset (or what its consumer passed beyond
        it without records to apply), or the log start below it."""
        if self.next_offset is None:
            return self.low
        return max(self.next_offset, self.passed or 0, self.low)

    @property
    def lag(self) -> int:
        """Records not applied yet (counted for a short gap, else offsets: an upper bound)."""
        return self.behind if self.behind is not None else max(self.high - self.start, 0)

    @property
    def beyond_log_end(self) -> bool:
        """The stored offset lies past the partition's end: the topic was recreated or truncated, and
        the projector refuses to run (`OffsetBeyondLogEndError`) until the read model is rebuilt."""
        return self.next_offset is not None and self.next_offset > self.high

    def to_json(self) -> dict[str, JSON]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "next_offset": self.next_offset,
            "low": self.low,
            "high": self.high,
            "lag": self.lag,
            "lag_counted": self.behind is not None,
            "beyond_log_end": self.beyond_log_end,
        }


@dataclass(frozen=True)
class ProjectorStatus:
    """One projector: its consumer group and every partition of its topics, by topic and partition."""

    projector: str
    group: str
    partitions: tuple[PartitionStatus, ...]

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    def to_json(self) -> dict[str, JSON]:
        return {
            "projector": self.projector,
            "group": self.group,
            "total_lag": self.total_lag,
            "partitions": [p.to_json() for p in self.partitions],
        }


class ProjectorStatusSource:
    """A projector's StatusSource. Each read asks the database (stored offsets) and Kafka
    (watermarks, and the records of a short gap); a failure of either is a ProjectorError saying
    which."""

    def __init__(
        self,
        projector: Projector,
        engine: Engine,
        kafka: KafkaSettings | str,
        *,
        metrics: ProjectorMetrics | None = None,
        timeout: float = 10.0,
    ) -> None:
        """`metrics`: its lag gauges are set from each read (as `projector_status` does)."""
        self.projector = projector
        self.engine = engine
        self.kafka = KafkaSettings.of(kafka)
        self.metrics = metrics
        self.timeout = timeout

    def read(self) -> ProjectorStatus:
        rows = projector_status(
            self.projector, self.engine, self.kafka, metrics=self.metrics, timeout=self.timeout
        )
        return ProjectorStatus(self.projector.name, self.projector.group_id, tuple(rows))

    def snapshot(self) -> Mapping[str, JSON]:
        return self.read().to_json()


def projector_status(
    projector: Projector,
    engine: Engine,
    kafka: KafkaSettings | str,
    *,
    metrics: ProjectorMetrics | None = None,
    timeout: float = 10.0,
) -> list[PartitionStatus]:
    """Lag of every partition of the projector's topics (stored offsets against Kafka's watermarks)."""
    with driver_errors(f"status of projector {projector.name!r}"):
        return _status(projector, engine, KafkaSettings.of(kafka), metrics, timeout)


def _status(
    projector: Projector,
    engine: Engine,
    kafka: KafkaSettings | str,
    metrics: ProjectorMetrics | None,
    timeout: float,
) -> list[PartitionStatus]:
    with engine.connect() as conn:
        stored = OffsetStore(projector.name).all(conn)
    # read_committed: the end of a partition is its last stable offset, as the projector sees it.
    consumer = clients.consumer(kafka, projector.group_id)
    try:
        result = []
        counts = partition_counts(consumer, projector.topics, timeout)
        partitions = [TopicPartition(t, p) for t, n in sorted(counts.items()) for p in range(n)]
        passed = {(c.topic, c.partition): c.offset for c in consumer.committed(partitions, timeout=timeout)}
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            beyond = passed.get((tp.topic, tp.partition), -1)
            result.append(
                PartitionStatus(
                    tp.topic,
                    tp.partition,
                    stored.get((tp.topic, tp.partition)),
                    low,
                    high,
                    passed=beyond if 0 <= beyond <= high else None,
                )
            )
        short = {(s.topic, s.partition): s for s in result if 0 < s.high - s.start <= EXACT_LAG_UP_TO}
        if short:
            behind = dict.fromkeys(short, 0)
            starts = {tp: s.start for tp, s in short.items()}
            targets = {tp: s.high for tp, s in short.items()}
            for records, _ in read_to_end(consumer, starts, targets=targets, timeout=timeout):
                for record in records:
                    behind[(record.topic() or "", record.partition() or 0)] += 1
            result = [replace(s, behind=behind.get((s.topic, s.partition))) for s in result]
    finally:
        consumer.close()
    if metrics is not None:
        for status in result:
            metrics.lag.labels(projector.name, status.topic, str(status.partition)).set(status.lag)
    return result
