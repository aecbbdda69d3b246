"""Running a projector: consume its topics in a consumer group and apply batches with `BatchApplier`.

The database, not Kafka, knows where the projector stands: on assignment each partition is
positioned at the offset stored with the read model (`StoredPositions`, the group loop's position
port); Kafka's committed offsets are written after each batch only so that the usual lag tools see
the group's progress.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from sqlalchemy import Engine

from outboxkit.kafka import clients
from outboxkit.kafka.admin import partition_counts
from outboxkit.kafka.dead_letter import DeadLetterPublisher
from outboxkit.kafka.group import GROUP_SETTINGS, GroupConsumer
from outboxkit.kafka.records import Partition, where
from outboxkit.kafka.settings import KafkaSettings
from projectors.apply import BatchApplier, FencedError
from projectors.database import driver_errors
from projectors.errors import OffsetBeyondLogEndError, PartitionCountChangedError, ProjectorError
from projectors.metrics import ProjectorMetrics
from projectors.projector import Projector
from projectors.schema import check_tables
from projectors.tracing import HandlerSpans
from projectors.tracking import OffsetStore

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from outboxkit.ops.health import Heartbeat

log = logging.getLogger(__name__)

LAG_REPORT_SECONDS = 1.0

FIXED_SETTINGS = GROUP_SETTINGS
"""Settings the guarantees rest on; `consumer_settings` cannot override them."""


def consumer_settings(projector: Projector, kafka: KafkaSettings | str) -> dict[str, Any]:
    """librdkafka settings of a projector's consumer."""
    config = projector.config
    settings: dict[str, Any] = {
        "auto.offset.reset": "earliest",  # a stored offset below the log start: begin at the start
        "session.timeout.ms": config.session_timeout_ms,
        "heartbeat.interval.ms": max(config.session_timeout_ms // 5, 100),
    }
    if config.instance_id:
        settings["group.instance.id"] = config.instance_id
    settings.update(config.consumer_settings)
    settings.update(FIXED_SETTINGS)
    return clients.consumer_config(kafka, projector.group_id, settings)


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


class StoredPositions:
    """The projector's position port: partitions start at the offsets stored with the read model.

    Claiming refuses what would lose events silently: a topic that grew partitions while the
    projector ran, and stored offsets beyond their partition's end.
    """

    def __init__(self, projector: Projector, engine: Engine, store: OffsetStore) -> None:
        self.projector = projector
        self.engine = engine
        self.store = store
        self.counts: dict[str, int] = {}

    def claim(self, consumer: Consumer, partitions: Sequence[Partition]) -> dict[Partition, int]:
        for topic, partition in partitions:
            if partition >= self.counts.get(topic, 0):
                raise PartitionCountChangedError(
                    f"topic {topic!r} grew beyond {self.counts.get(topic)} partitions while "
                    f"projector {self.projector.name!r} ran; rebuild its read model"
                )
        with self.engine.begin() as conn:
            stored = self.store.claim(conn, list(partitions), self.counts)
        check_log_ends(consumer, stored, self.projector.name)
        return stored

    def release(self, consumer: Consumer, partitions: Sequence[Partition]) -> None:
        """Nothing to do: a batch in flight is fenced by the stored offsets (projectors/apply.py)."""

    def lose(self, consumer: Consumer, partitions: Sequence[Partition]) -> None:
        """Nothing to do either: the stored offsets fence a lost partition's batch as well."""

    def load(self, partitions: Sequence[Partition]) -> dict[Partition, int]:
        """The stored offsets of `partitions`; a partition without a row starts over (claimed)."""
        with self.engine.begin() as conn:
            stored = self.store.load(conn, partitions)
            missing = [tp for tp in partitions if tp not in stored]
            if missing:  # rows gone (a rebuild swap of a projector never run): start over
                stored.update(self.store.claim(conn, missing, self.counts))
        return stored


class ProjectorRunner:
    """One instance of a projector. Start several (processes or machines) to share the partitions.

    Not thread-safe: `run` blocks its thread until `stop` is set; set `stop` from any thread.
    """

    def __init__(
        self,
        projector: Projector,
        engine: Engine,
        kafka: KafkaSettings | str,
        *,
        metrics: ProjectorMetrics | None = None,
        tracer: Tracer | None = None,
        health: Heartbeat | None = None,
    ) -> None:
        """`kafka`: the cluster (settings, or brokers reached without a login); `tracer`: where
        handler spans go (default: OpenTelemetry's global provider); `health`: beaten ok after
        every consume turn (with the owned partitions), failed with the reason when the projector
        cannot go on (the daemon's /healthz reads it)."""
        self.projector = projector
        self.health = health
        self.engine = engine
        self.kafka = KafkaSettings.of(kafka)
        self.metrics = metrics or ProjectorMetrics()
        self.store = OffsetStore(projector.name)
        self._dead_letters = DeadLetterPublisher(
            self.kafka, projector.name, projector.config.dead_letter_topic
        )
        self.applier = BatchApplier(
            projector,
            engine,
            self.store,
            self._dead_letters,
            self.metrics,
            spans=HandlerSpans(projector.name, projector.group_id, tracer),
        )
        self._stored = StoredPositions(projector, engine, self.store)
        self._next_lag_report = 0.0
        self._group = GroupConsumer(
            self.kafka,
            projector.group_id,
            projector.topics,
            self._stored,
            settings=consumer_settings(projector, self.kafka),
            failure=lambda err: ProjectorError(
                f"projector {projector.name!r} could not take partitions: {err}"
            ),
        )

    @property
    def positions(self) -> dict[tuple[str, int], int]:
        """Next offset per owned partition, as stored in the database."""
        return self._group.positions

    def run(self, stop: threading.Event) -> None:
        """Consume and apply until `stop` is set; raises ProjectorError when the projector cannot go on.

        `stop` is honoured between records and during retry back-offs too: a batch that is retried
        is left unfinished, its records not applied stay below the stored offset."""
        self.applier.stop = stop
        try:
            with driver_errors(f"projector {self.projector.name!r}"):
                self._run(stop)
        except Exception as err:
            if self.health is not None:
                self.health.beat("failed", str(err))
            raise

    def _run(self, stop: threading.Event) -> None:
        config = self.projector.config
        try:
            with self.engine.connect() as conn:
                check_tables(conn, self.projector)
            consumer = self._group.open()
            self._stored.counts = partition_counts(consumer, self.projector.topics)
            with self.engine.connect() as conn:
                check_partition_counts(
                    self.store.partition_counts(conn), self._stored.counts, self.projector.name
                )
            self._group.run(
                stop,
                self._apply,
                batch_size=config.batch_size,
                batch_timeout=config.batch_timeout,
                on_turn=self._turned,
                on_stop=lambda consumer: self._commit_positions(consumer, asynchronous=False),
            )
        finally:
            self._dead_letters.close()

    def _turned(self) -> None:
        self._report_lag()
        if self.health is not None:
            self.health.beat("ok", partitions=[f"{t}[{p}]" for t, p in sorted(self._group.positions)])

    def _apply(self, records: Sequence[Message]) -> None:
        consumer = self._group.consumer
        assert consumer is not None
        owned = self._group.positions
        expected = {tp: owned[tp] for tp in {where(m) for m in records}}
        try:
            positions = self.applier.apply(records, expected)
        except FencedError as fenced:
            # The whole batch was consumed but not applied: every partition in it goes back to its
            # stored offset, not only the ones that moved.
            log.warning("%s; re-reading stored offsets", fenced)
            self._group.rewind(self._stored.load(list(expected)))
            return
        self._group.advance(positions)
        # Only for monitoring tools: the database's offsets are the ones that count.
        committed = [TopicPartition(t, p, n) for (t, p), n in positions.items()]
        try:
            consumer.commit(offsets=committed, asynchronous=True)
        except KafkaException as err:
            log.debug("commit of offsets for monitoring failed: %s", err)
        self._report_lag(now=True)

    def _report_lag(self, *, now: bool = False) -> None:
        """Set the lag gauges, at most once a second: the end of each owned partition (cached from
        the last fetch, the last stable offset) less where the projector stands. That is the stored
        offset or, when the consumer has moved past a transaction's commit marker or an aborted
        transaction, its position: markers are not lag. `now`: after a batch.

        Such a position is also committed to Kafka (as the stored offsets are after each batch,
        for monitoring only: the projector never starts from Kafka's offsets), so that
        `projector_status` sees a projector past an aborted tail of any length as caught up."""
        clock = time.monotonic()
        consumer = self._group.consumer
        if consumer is None or (clock < self._next_lag_report and not now):
            return
        self._next_lag_report = clock + LAG_REPORT_SECONDS
        owned = self._group.positions
        if not owned:
            return
        fetched = self._fetched(consumer, owned)
        self._commit_positions(consumer, asynchronous=True, fetched=fetched)
        for tp, stored in owned.items():
            _low, high = consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
            if high >= 0:
                at = max(stored, fetched.get(tp, -1))
                self.metrics.lag.labels(self.projector.name, tp[0], str(tp[1])).set(max(high - at, 0))

    def _fetched(self, consumer: Consumer, owned: Mapping[Partition, int]) -> dict[Partition, int]:
        """The consumer's position on each owned partition (-1 when it has none yet)."""
        asked = consumer.position([TopicPartition(*tp) for tp in owned])
        return {(p.topic, p.partition): p.offset for p in asked}

    def _commit_positions(
        self, consumer: Consumer, *, asynchronous: bool, fetched: Mapping[Partition, int] | None = None
    ) -> None:
        """Commit, for monitoring, the positions that moved past records that are never applied
        (`fetched`: the consumer's positions, when the caller has just asked for them)."""
        owned = self._group.positions
        if not owned:
            return
        ahead = [
            TopicPartition(t, p, at)
            for (t, p), at in (fetched or self._fetched(consumer, owned)).items()
            if at > owned[(t, p)]
        ]
        if ahead:
            try:
                if asynchronous:
                    consumer.commit(offsets=ahead, asynchronous=True)
                else:
                    consumer.commit(offsets=ahead, asynchronous=False)
            except KafkaException as err:
                log.debug("commit of positions for monitoring failed: %s", err)
