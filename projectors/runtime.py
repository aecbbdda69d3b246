"""Running a projector: consume its topics in a consumer group and apply batches with `BatchApplier`.

The database, not Kafka, knows where the projector stands: on assignment each partition is
positioned at the offset stored with the read model; Kafka's committed offsets are written after
each batch only so that the usual lag tools see the group's progress.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from sqlalchemy import Engine

from projectors.apply import BatchApplier, FencedError, where
from projectors.database import driver_errors
from projectors.dead_letter import DeadLetterPublisher
from projectors.errors import OffsetBeyondLogEndError, PartitionCountChangedError, ProjectorError
from projectors.metrics import ProjectorMetrics
from projectors.projector import Projector
from projectors.tracing import HandlerSpans
from projectors.tracking import OffsetStore

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

log = logging.getLogger(__name__)

# Settings the guarantees rest on; `consumer_settings` cannot override them.
FIXED_SETTINGS: Mapping[str, Any] = {
    "isolation.level": "read_committed",
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "partition.assignment.strategy": "cooperative-sticky",
}


def consumer_settings(projector: Projector, bootstrap_servers: str) -> dict[str, Any]:
    """librdkafka settings of a projector's consumer."""
    config = projector.config
    settings: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": projector.group_id,
        "auto.offset.reset": "earliest",  # a stored offset below the log start: begin at the start
        "session.timeout.ms": config.session_timeout_ms,
        "heartbeat.interval.ms": max(config.session_timeout_ms // 5, 100),
    }
    if config.instance_id:
        settings["group.instance.id"] = config.instance_id
    settings.update(config.consumer_settings)
    settings.update(FIXED_SETTINGS)
    return settings


def partition_counts(consumer: Consumer, topics: Sequence[str], timeout: float = 30.0) -> dict[str, int]:
    """The live partition count of each topic; ProjectorError when a topic does not exist."""
    counts: dict[str, int] = {}
    for topic in topics:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            reason = metadata.error if metadata is not None else "no metadata"
            raise ProjectorError(f"topic {topic!r} is not available ({reason}); create it first")
        counts[topic] = len(metadata.partitions)
    return counts


def check_partition_counts(stored: Mapping[str, set[int]], live: Mapping[str, int], projector: str) -> None:
    """Refuse to go on when a topic's partition count changed since offsets were stored."""
    for topic, count in live.items():
        before = stored.get(topic, set())
        if before and before != {count}:
            raise PartitionCountChangedError(
                f"topic {topic!r} has {count} partitions, but projector {projector!r} stored its offsets "
                f"with {sorted(before)}: keys moved between partitions, so row versions (partition, offset) "
                f"no longer order one aggregate's events. Rebuild the read model: "
                f"`outbox projector rebuild` (it starts over with the new count)."
            )


def check_log_ends(
    consumer: Consumer, stored: Mapping[tuple[str, int], int], projector: str, timeout: float = 10.0
) -> None:
    """Refuse stored offsets beyond their partition's end (the high watermark).

    A partition's offsets only grow, so such an offset means the log the projector read is gone: the
    topic was deleted and recreated, or truncated (an unclean leader election). Kafka would answer
    the fetch with "offset out of range" and the consumer would start over from the beginning,
    whose records lie below the stored offset and would be dropped; or, read from the stored offset,
    skip every record until the new log reached it. Either way events are lost silently.
    """
    for (topic, partition), next_offset in sorted(stored.items()):
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
        if next_offset > high:
            raise OffsetBeyondLogEndError(
                f"topic {topic!r} partition {partition}: projector {projector!r} stored next offset "
                f"{next_offset}, but the partition ends at offset {high}: the topic was deleted and "
                f"recreated, or truncated, since the offsets were stored, so going on would skip its "
                f"records. Rebuild the read model from the topic as it is now: `outbox projector "
                f"rebuild` (its rows' versions are offsets of the old log, which would also hide the "
                f"new log's events). Only if the read model holds no offset versions, reset the "
                f"projector's offsets instead: DELETE FROM projector_offsets WHERE projector = "
                f"'{projector}' AND topic = '{topic}' (it then reads the topic from its start)."
            )


class ProjectorRunner:
    """One instance of a projector. Start several (processes or machines) to share the partitions.

    Not thread-safe: `run` blocks its thread until `stop` is set; set `stop` from any thread.
    """

    def __init__(
        self,
        projector: Projector,
        engine: Engine,
        bootstrap_servers: str,
        *,
        metrics: ProjectorMetrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        """`tracer`: where handler spans go (default: OpenTelemetry's global provider)."""
        self.projector = projector
        self.engine = engine
        self.bootstrap_servers = bootstrap_servers
        self.metrics = metrics or ProjectorMetrics()
        self.store = OffsetStore(projector.name)
        self._dead_letters = DeadLetterPublisher(
            bootstrap_servers, projector.name, projector.config.dead_letter_topic
        )
        self.applier = BatchApplier(
            projector,
            engine,
            self.store,
            self._dead_letters,
            self.metrics,
            spans=HandlerSpans(projector.name, projector.group_id, tracer),
        )
        self._positions: dict[tuple[str, int], int] = {}
        self._counts: dict[str, int] = {}
        self._failure: BaseException | None = None

    @property
    def positions(self) -> dict[tuple[str, int], int]:
        """Next offset per owned partition, as stored in the database."""
        return dict(self._positions)

    def run(self, stop: threading.Event) -> None:
        """Consume and apply until `stop` is set; raises ProjectorError when the projector cannot go on."""
        with driver_errors(f"projector {self.projector.name!r}"):
            self._run(stop)

    def _run(self, stop: threading.Event) -> None:
        config = self.projector.config
        consumer = Consumer(consumer_settings(self.projector, self.bootstrap_servers))
        try:
            self._counts = partition_counts(consumer, self.projector.topics)
            with self.engine.connect() as conn:
                check_partition_counts(self.store.partition_counts(conn), self._counts, self.projector.name)
            consumer.subscribe(
                list(self.projector.topics),
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )
            while not stop.is_set():
                messages = consumer.consume(config.batch_size, config.batch_timeout)
                if self._failure is not None:
                    raise self._failure
                records = self._owned(messages)
                if records:
                    self._apply(consumer, records)
        finally:
            self._positions.clear()
            consumer.close()
            self._dead_letters.close()

    def _owned(self, messages: Sequence[Message]) -> list[Message]:
        """Records of partitions this instance owns, not yet applied (a seek can leave older ones)."""
        records = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise ProjectorError(f"Kafka consumer failed: {error}")
                if error.code() not in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                    log.warning("Kafka: %s", error)
                continue
            position = self._positions.get(where(message))
            if position is not None and (message.offset() or 0) >= position:
                records.append(message)
        return records

    def _apply(self, consumer: Consumer, records: Sequence[Message]) -> None:
        expected = {tp: self._positions[tp] for tp in {where(m) for m in records}}
        try:
            positions = self.applier.apply(records, expected)
        except FencedError as fenced:
            # The whole batch was consumed but not applied: every partition in it goes back to its
            # stored offset, not only the ones that moved.
            log.warning("%s; re-reading stored offsets", fenced)
            self._resync(consumer, list(expected))
            return
        self._positions.update(positions)
        # Only for monitoring tools: the database's offsets are the ones that count.
        committed = [TopicPartition(t, p, n) for (t, p), n in positions.items()]
        try:
            consumer.commit(offsets=committed, asynchronous=True)
        except KafkaException as err:
            log.debug("commit of offsets for monitoring failed: %s", err)
        for tp, n in positions.items():
            _low, high = consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
            if high >= 0:
                self.metrics.lag.labels(self.projector.name, tp[0], str(tp[1])).set(max(high - n, 0))

    def _resync(self, consumer: Consumer, partitions: list[tuple[str, int]]) -> None:
        """Position partitions at their stored offsets again (another instance or a rebuild moved them)."""
        with self.engine.begin() as conn:
            stored = self.store.load(conn, partitions)
        for tp in partitions:
            if tp not in self._positions:
                continue
            if tp not in stored:  # rows gone (a rebuild swap of a projector never run): start over
                with self.engine.begin() as conn:
                    stored.update(self.store.claim(conn, [tp], self._counts))
            self._positions[tp] = stored[tp]
            target = TopicPartition(tp[0], tp[1], stored[tp])
            try:
                consumer.seek(target)
            except KafkaException:  # not fetching yet: assigning again positions it too
                consumer.incremental_unassign([TopicPartition(*tp)])
                consumer.incremental_assign([target])

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            for tp in partitions:
                if tp.partition >= self._counts.get(tp.topic, 0):
                    raise PartitionCountChangedError(
                        f"topic {tp.topic!r} grew beyond {self._counts.get(tp.topic)} partitions while "
                        f"projector {self.projector.name!r} ran; rebuild its read model"
                    )
            with self.engine.begin() as conn:
                stored = self.store.claim(conn, [(tp.topic, tp.partition) for tp in partitions], self._counts)
            check_log_ends(consumer, stored, self.projector.name)
            for tp in partitions:
                tp.offset = stored[(tp.topic, tp.partition)]
                self._positions[(tp.topic, tp.partition)] = tp.offset
            log.info("assigned %s", sorted(stored.items()))
            consumer.incremental_assign(partitions)
        except Exception as err:  # raised from consume() would lose it: keep it for run()
            if not isinstance(err, ProjectorError):
                failure = ProjectorError(
                    f"projector {self.projector.name!r} could not take partitions: {err}"
                )
                failure.__cause__ = err
                err = failure
            self._failure = err

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._positions.pop((tp.topic, tp.partition), None)
        log.info("revoked %s", sorted((tp.topic, tp.partition) for tp in partitions))
