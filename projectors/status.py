"""Where a projector stands: stored offset, high watermark and lag per partition."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import TopicPartition
from sqlalchemy import Engine

from outboxkit.kafka import clients
from outboxkit.kafka.admin import partition_counts
from outboxkit.kafka.settings import KafkaSettings
from projectors.database import driver_errors
from projectors.metrics import ProjectorMetrics
from projectors.projector import Projector
from projectors.tracking import OffsetStore


@dataclass(frozen=True)
class PartitionStatus:
    """One partition of one topic. `next_offset` is None when the projector never owned it."""

    topic: str
    partition: int
    next_offset: int | None
    low: int
    high: int

    @property
    def lag(self) -> int:
        """Records not applied yet. On a transactional topic the last commit marker counts as one."""
        return max(self.high - max(self.next_offset or 0, self.low), 0)

    @property
    def beyond_log_end(self) -> bool:
        """The stored offset lies past the partition's end: the topic was recreated or truncated, and
        the projector refuses to run (`OffsetBeyondLogEndError`) until the read model is rebuilt."""
        return self.next_offset is not None and self.next_offset > self.high


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
        for topic, count in sorted(partition_counts(consumer, projector.topics, timeout).items()):
            for partition in range(count):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
                status = PartitionStatus(topic, partition, stored.get((topic, partition)), low, high)
                result.append(status)
                if metrics is not None:
                    metrics.lag.labels(projector.name, topic, str(partition)).set(status.lag)
    finally:
        consumer.close()
    return result
