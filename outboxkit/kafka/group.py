"""The consumer-group loop every consumer-side component runs: subscribe, position each assigned
partition where a `PositionStore` says, and hand batches of records to the component.

Who knows where a consumer stands is the component's choice, behind one port: a projector keeps
its offsets in its database, beside the read model (the database is the truth, Kafka's committed
offsets are only for monitoring); a Kafka-to-Kafka processor keeps them in Kafka, committed in its
transactions. The loop itself never commits.

Rebalances are cooperative (incremental): an assignment adds partitions, a revocation takes some
away; the others keep their positions and go on. Callbacks run inside `consume()`, so an error
raised in one would be lost; the loop keeps it and raises it from `run()`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from outbox.errors import OutboxError
from outboxkit.kafka import clients
from outboxkit.kafka.errors import KafkaUnavailableError, StopRequestedError
from outboxkit.kafka.records import Partition, where
from outboxkit.kafka.settings import KafkaSettings

log = logging.getLogger(__name__)

GROUP_SETTINGS: Mapping[str, Any] = {
    "isolation.level": "read_committed",
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "partition.assignment.strategy": "cooperative-sticky",
}
"""What the loop's guarantees rest on; a component's own consumer settings cannot override them."""


class PositionStore(Protocol):
    """Where a group member's positions are kept; the loop asks on every rebalance.

    Called on the consuming thread, from inside `consume()`. An exception refuses the assignment:
    the loop stops and raises it from `run()` (wrapped in `failure` when it is not an OutboxError).
    A claim that may wait long should give up once the loop is `stopping`, raising
    StopRequestedError: the partitions are then left unclaimed, and the loop stops as asked.
    """

    def claim(self, consumer: Consumer, partitions: Sequence[Partition]) -> Mapping[Partition, int]:
        """The next offset to read of each newly assigned partition."""
        ...

    def release(self, consumer: Consumer, partitions: Sequence[Partition]) -> None:
        """The partitions are revoked: what is in flight for them may still be finished now (a
        Kafka-to-Kafka processor commits its open transaction), nothing after."""
        ...

    def lose(self, consumer: Consumer, partitions: Sequence[Partition]) -> None:
        """The partitions are lost (the group went on without this member: session timeout, a
        stale generation): another member may own them already, so what is in flight for them must
        never be committed (a processor aborts its transaction)."""
        ...


Failure = Callable[[BaseException], OutboxError]


class GroupConsumer:
    """One member of consumer group `group_id` on `topics`. Not thread-safe: `run` blocks its
    thread until `stop` is set (set it from any thread)."""

    def __init__(
        self,
        kafka: KafkaSettings | str,
        group_id: str,
        topics: Sequence[str],
        positions: PositionStore,
        *,
        settings: Mapping[str, Any] | None = None,
        failure: Failure = lambda err: OutboxError(f"consumer group: {err}"),
    ) -> None:
        """`settings`: the component's librdkafka consumer settings (GROUP_SETTINGS win);
        `failure` turns an unexpected error in a rebalance into the component's error."""
        self.kafka = KafkaSettings.of(kafka)
        self.group_id = group_id
        self.topics = tuple(topics)
        self.store = positions
        self.settings = {**(settings or {}), **GROUP_SETTINGS}
        self.failure = failure
        self.consumer: Consumer | None = None
        self._positions: dict[Partition, int] = {}
        self._error: BaseException | None = None
        self._closing = False
        self._stop: threading.Event | None = None

    @property
    def positions(self) -> dict[Partition, int]:
        """Next offset of every owned partition."""
        return dict(self._positions)

    @property
    def stopping(self) -> bool:
        """Whether the running loop was asked to stop (a waiting claim gives up then)."""
        return self._stop is not None and self._stop.is_set()

    def open(self) -> Consumer:
        """Make the consumer (before `run`, e.g. to read metadata); `run` makes it when not open."""
        if self.consumer is None:
            self.consumer = clients.consumer(self.kafka, self.group_id, self.settings)
        return self.consumer

    def run(
        self,
        stop: threading.Event,
        handle: Callable[[Sequence[Message]], None],
        *,
        batch_size: int = 500,
        batch_timeout: float | Callable[[], float] = 0.1,
        on_turn: Callable[[], None] | None = None,
        on_stop: Callable[[Consumer], None] | None = None,
    ) -> None:
        """Consume until `stop` is set, passing each batch of records of owned partitions at or
        above their positions to `handle` (which moves positions on with `advance`). A batch is
        what has arrived, up to `batch_size`; with nothing there, the loop waits up to
        `batch_timeout` seconds (or what the callable says each time) for the first record.
        `on_turn` runs after every consume; `on_stop` once `stop` is set, before the consumer
        leaves."""
        consumer = self.open()
        self._stop = stop
        try:
            consumer.subscribe(
                list(self.topics),
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            wait = batch_timeout if callable(batch_timeout) else lambda: batch_timeout
            while not stop.is_set():
                # consume(n, t) waits all of t until n records have come: under a trickle every
                # batch would cost t of latency. So: what is there, else the first to come, then
                # what came with it.
                messages = consumer.consume(batch_size, 0)
                if not messages:
                    messages = consumer.consume(1, wait())
                    if messages and batch_size > 1:
                        messages += consumer.consume(batch_size - 1, 0)
                if self._error is not None:
                    raise self._error
                records = self._owned(messages)
                if records:
                    handle(records)
                if on_turn is not None:
                    on_turn()
            if on_stop is not None:
                on_stop(consumer)
        finally:
            self._positions.clear()
            self.consumer = None
            self._closing = True
            try:
                consumer.close()
            finally:
                self._closing = False

    def advance(self, positions: Mapping[Partition, int]) -> None:
        """Records below `positions` are done (the component stored that where it keeps them)."""
        for tp, offset in positions.items():
            if tp in self._positions:
                self._positions[tp] = offset

    def rewind(self, positions: Mapping[Partition, int]) -> None:
        """Read owned partitions again from `positions` (the stored truth moved under this member)."""
        consumer = self.consumer
        assert consumer is not None, "rewind() is for handlers, while run() runs"
        for tp, offset in positions.items():
            if tp not in self._positions:
                continue
            self._positions[tp] = offset
            target = TopicPartition(tp[0], tp[1], offset)
            try:
                consumer.seek(target)
            except KafkaException:  # not fetching yet: assigning again positions it too
                consumer.incremental_unassign([TopicPartition(*tp)])
                consumer.incremental_assign([target])

    def _owned(self, messages: Sequence[Message]) -> list[Message]:
        """Records of partitions this member owns, not yet done (a seek can leave older ones)."""
        records = []
        for message in messages:
            error = message.error()
            if error is not None:
                # A fatal error (e.g. a static member fenced after a broker restart) comes as an
                # event of code _FATAL whose own fatal flag is not set: the consumer is dead either way.
                if error.fatal() or error.code() == KafkaError._FATAL:
                    raise KafkaUnavailableError(
                        f"the Kafka consumer of group {self.group_id!r} failed: {error}"
                    )
                if error.code() not in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                    log.warning("Kafka: %s", error)
                continue
            position = self._positions.get(where(message))
            if position is not None and (message.offset() or 0) >= position:
                records.append(message)
        return records

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._closing:
            # An assignment on its way when the member left is served inside close(): nothing of
            # it will be read, and the store is not asked (a committed-offsets read blocks there
            # until its timeout: a closing consumer's requests get no answer).
            log.info("assigned while leaving the group, not claimed: %s", sorted(_names(partitions)))
            consumer.incremental_assign(partitions)
            return
        try:
            claimed = self.store.claim(consumer, _names(partitions))
            for tp in partitions:
                tp.offset = claimed[(tp.topic, tp.partition)]
                self._positions[(tp.topic, tp.partition)] = tp.offset
            log.info("assigned %s", sorted(claimed.items()))
            consumer.incremental_assign(partitions)
        except StopRequestedError:  # the loop stops after this consume: nothing of them is read
            log.info("stop asked while claiming, not claimed: %s", sorted(_names(partitions)))
            consumer.incremental_assign(partitions)
        except Exception as err:  # raised from consume() it would be lost: keep it for run()
            if not isinstance(err, OutboxError):
                wrapped = self.failure(err)
                wrapped.__cause__ = err
                err = wrapped
            self._error = err

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._gone(consumer, partitions, self.store.release, "revoked")

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._gone(consumer, partitions, self.store.lose, "lost")

    def _gone(
        self,
        consumer: Consumer,
        partitions: list[TopicPartition],
        tell: Callable[[Consumer, Sequence[Partition]], None],
        how: str,
    ) -> None:
        gone = _names(partitions)
        for tp in gone:
            self._positions.pop(tp, None)
        log.info("%s %s", how, sorted(gone))
        try:
            tell(consumer, gone)
        except Exception as err:
            self._error = err if isinstance(err, OutboxError) else self.failure(err)


def _names(partitions: Sequence[TopicPartition]) -> list[Partition]:
    return [(tp.topic, tp.partition) for tp in partitions]
