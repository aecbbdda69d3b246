"""Mode `database`: the handler's writes, the events it publishes through the outbox, and the input
positions commit in one PostgreSQL transaction. The stored positions (`processor_offsets`, Alembic
revision outboxkit_0004) are the truth; Kafka's committed offsets are never read.

A batch runs first in one transaction without savepoints (the fast path); if anything in it
fails it is rolled back and run again carefully, each handler attempt in a savepoint (so a failed
attempt leaves no writes behind), with retries and dead letters. A transaction first locks the
offset rows of its partitions and checks they hold what this instance expects: another instance
that took a partition over (a rebalance, a paused zombie) has moved them, so this one commits
nothing and reads the stored offsets again.

A dead letter is written through the outbox in the transaction that moves the offsets past its
input (outboxkit.processors.dead_letters), so a relay publishes it if and only if that commits: a
batch rolled back, or fenced, leaves none behind. Exactly once, like the outputs.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa
from confluent_kafka import Consumer, Message, TopicPartition
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.dialects.postgresql import insert

from outbox import Event, Outbox, TopicRouter
from outbox.config import OutboxSettings
from outbox.errors import EventTooLargeError, StorageError
from outbox.urls import sqlalchemy_url
from outboxkit.kafka.group import GroupConsumer
from outboxkit.kafka.records import Partition, where
from outboxkit.kafka.settings import KafkaSettings
from outboxkit.processors.dead_letters import DeadLetter, dead_letter
from outboxkit.processors.errors import ProcessorError
from outboxkit.processors.handling import InputHandler, Outcome, log_dead_letter
from outboxkit.processors.kafka_mode import IDLE_COMMIT_SECONDS, SEEK_SETTLE_SECONDS, consumer_settings
from outboxkit.processors.metrics import ProcessorMetrics
from outboxkit.processors.processor import Processor

if TYPE_CHECKING:
    from outboxkit.ops.health import Heartbeat

log = logging.getLogger(__name__)

DUPLICATE_ID = "outbox_events_ce_id_key"
"""The outbox's unique constraint on ce_id, as PostgreSQL names it in a violation."""

OFFSETS = sa.Table(
    "processor_offsets",
    sa.MetaData(),
    sa.Column("processor", sa.Text, primary_key=True),
    sa.Column("topic", sa.Text, primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)


def engine_for(database_url: str) -> Engine:
    return create_engine(sqlalchemy_url(database_url), pool_pre_ping=True)


def load_offsets(
    conn: Connection, processor: str, partitions: Iterable[Partition] | None = None, *, lock: bool = False
) -> dict[Partition, int]:
    query = sa.select(OFFSETS.c.topic, OFFSETS.c.partition, OFFSETS.c.next_offset).where(
        OFFSETS.c.processor == processor
    )
    if partitions is not None:
        query = query.where(sa.tuple_(OFFSETS.c.topic, OFFSETS.c.partition).in_(sorted(set(partitions))))
    if lock:  # one lock order for every instance: two never deadlock on the rows
        query = query.order_by(OFFSETS.c.topic, OFFSETS.c.partition).with_for_update()
    return {(t, p): n for t, p, n in conn.execute(query)}


def stored_positions(processor: Processor, database_url: str) -> dict[Partition, int]:
    """The stored next offsets of a processor (for its status)."""
    engine = engine_for(database_url)
    try:
        with engine.connect() as conn:
            return load_offsets(conn, processor.name)
    finally:
        engine.dispose()


class FencedError(ProcessorError):
    """The stored offsets moved under this instance: another one owns these partitions now."""


class DatabaseProcessorRunner:
    """One instance of a mode-`database` processor. `run` blocks its thread until `stop` is set."""

    def __init__(
        self,
        processor: Processor,
        engine: Engine,
        kafka: KafkaSettings | str,
        *,
        outbox_settings: OutboxSettings | None = None,
        metrics: ProcessorMetrics | None = None,
        health: Heartbeat | None = None,
    ) -> None:
        self.processor = processor
        self.config = processor.config
        self.engine = engine
        self.kafka = KafkaSettings.of(kafka)
        self.metrics = metrics or ProcessorMetrics()
        self.health = health
        self.handler = InputHandler(processor)
        base = Outbox.from_settings(outbox_settings) if outbox_settings is not None else Outbox()
        self.outbox = dataclasses.replace(
            base, router=TopicRouter(self.config.output_topic), source=processor.name
        )
        self.group = GroupConsumer(
            self.kafka,
            processor.group_id,
            processor.topics,
            self,
            settings=consumer_settings(processor),
            failure=lambda err: ProcessorError(
                f"processor {processor.name!r} could not take partitions: {err}"
            ),
        )
        self._last_idle_store = 0.0
        self._letters = 0
        """Dead letters written in the open PostgreSQL transaction (counted in metrics once it commits)."""

    def run(self, stop: threading.Event) -> None:
        try:
            self.group.run(
                stop,
                self._apply,
                batch_size=self.config.transaction_records,
                batch_timeout=self.config.transaction_ms / 1000,
                on_turn=self._turn,
                on_stop=lambda _consumer: self._store_passed_positions(),
            )
        except Exception as err:
            if self.health is not None:
                self.health.beat("failed", str(err))
            raise

    # -- the position port -------------------------------------------------------------------

    def claim(self, consumer: Consumer, partitions: Sequence[Partition]) -> dict[Partition, int]:
        rows = [
            {"processor": self.processor.name, "topic": t, "partition": p, "next_offset": 0}
            for t, p in partitions
        ]
        with self.engine.begin() as conn:
            if rows:
                conn.execute(insert(OFFSETS).on_conflict_do_nothing(), rows)
            return load_offsets(conn, self.processor.name, partitions)

    def release(self, consumer: Consumer, partitions: Sequence[Partition]) -> None:
        """Nothing in flight: a batch commits (or not) before consume is called again."""

    def lose(self, consumer: Consumer, partitions: Sequence[Partition]) -> None:
        """Nothing either: the stored offsets fence whatever this instance still tries."""

    # -- the loop ----------------------------------------------------------------------------

    def _turn(self) -> None:
        now = time.monotonic()
        if now - self._last_idle_store > IDLE_COMMIT_SECONDS:
            self._last_idle_store = now
            self._store_passed_positions()
        if self.health is not None:
            self.health.beat("ok", partitions=[f"{t}[{p}]" for t, p in sorted(self.group.positions)])

    def _store_passed_positions(self) -> None:
        """Store the consumer's positions where they moved past the stored ones over records that
        are never handed over (commit markers, aborted records), so the lag reaches 0."""
        consumer, owned = self.group.consumer, self.group.positions
        if consumer is None or not owned:
            return
        asked = consumer.position([TopicPartition(*tp) for tp in owned])
        ahead = {(p.topic, p.partition): p.offset for p in asked if p.offset > owned[(p.topic, p.partition)]}
        if ahead:
            self._apply([], {tp: owned[tp] for tp in ahead}, ahead)

    def _apply(
        self,
        records: Sequence[Message],
        expected: Mapping[Partition, int] | None = None,
        passed: Mapping[Partition, int] | None = None,
    ) -> None:
        if expected is None:
            owned = self.group.positions
            expected = {tp: owned[tp] for tp in {where(m) for m in records}}
        try:
            positions = self._transaction(records, expected, passed or {})
        except FencedError as fenced:
            log.warning("%s; reading the stored offsets again", fenced)
            with self.engine.connect() as conn:
                self.group.rewind(load_offsets(conn, self.processor.name, expected))
            # A seek is asynchronous: the positions are not trusted until it is surely done.
            self._last_idle_store = time.monotonic() + SEEK_SETTLE_SECONDS
            return
        self.group.advance(positions)
        self.metrics.processed.labels(self.processor.name).inc(len(records))

    def _transaction(
        self, records: Sequence[Message], expected: Mapping[Partition, int], passed: Mapping[Partition, int]
    ) -> dict[Partition, int]:
        """Fast path: the whole batch in one transaction without savepoints, its outputs in one
        outbox write. If anything in it fails, it is rolled back and done again carefully: each
        attempt in a savepoint, with retries and dead letters."""
        try:
            return self._run(records, expected, passed, careful=False)
        except FencedError:
            raise
        except Exception as err:
            if not records:
                raise
            log.info("batch of %d records failed (%s); handling them one by one", len(records), err)
            return self._run(records, expected, passed, careful=True)

    def _run(
        self,
        records: Sequence[Message],
        expected: Mapping[Partition, int],
        passed: Mapping[Partition, int],
        *,
        careful: bool,
    ) -> dict[Partition, int]:
        positions = {**expected, **passed}
        self._letters = 0
        with self.engine.begin() as conn:
            stored = load_offsets(conn, self.processor.name, expected, lock=True)
            moved = {tp: (n, stored.get(tp)) for tp, n in expected.items() if stored.get(tp) != n}
            if moved:
                raise FencedError(f"offsets moved by another instance (expected, stored): {moved}")
            outputs: list[Event] = []
            for message in records:
                if careful:
                    self._send(conn, message, self.handler.handle(message, conn, attempt=_in_savepoint(conn)))
                else:
                    outputs.extend(self.handler.once(message, conn).outputs)
                positions[where(message)] = (message.offset() or 0) + 1
            if outputs:
                self.outbox.publish_many(conn, outputs)
                self.metrics.outputs.labels(self.processor.name).inc(len(outputs))
            conn.execute(
                sa.update(OFFSETS)
                .where(
                    OFFSETS.c.processor == self.processor.name,
                    OFFSETS.c.topic == sa.bindparam("b_topic"),
                    OFFSETS.c.partition == sa.bindparam("b_partition"),
                )
                .values(next_offset=sa.bindparam("b_next"), updated_at=sa.func.now()),
                [{"b_topic": t, "b_partition": p, "b_next": n} for (t, p), n in sorted(positions.items())],
            )
        # Counted once committed: a batch rolled back (a later record stopped the processor, the
        # fast path failed, the offsets moved) leaves no dead letter, and its inputs come again.
        if self._letters:
            self.metrics.dead_lettered.labels(self.processor.name).inc(self._letters)
        return positions

    def _send(self, conn: Connection, message: Message, outcome: Outcome) -> None:
        if outcome.failure is not None:
            self._dead_letter(conn, message, outcome)
            return
        if outcome.outputs:
            try:
                with conn.begin_nested():
                    self.outbox.publish_many(conn, outcome.outputs)
            except StorageError as err:
                if DUPLICATE_ID not in str(err):
                    raise
                self._publish_new(conn, outcome.outputs)
            self.metrics.outputs.labels(self.processor.name).inc(len(outcome.outputs))

    def _dead_letter(self, conn: Connection, message: Message, outcome: Outcome) -> None:
        assert outcome.failure is not None
        topic = self.config.dead_letter_topic.replace("{topic}", message.topic() or "")
        letter = dead_letter(message, self.processor.name, outcome.failure, outcome.attempts, topic)
        try:
            try:
                self._write(conn, letter)
            except EventTooLargeError as err:  # refused before any SQL: nothing to roll back
                log.warning(
                    "dead letter %s is too large (%s): written without the value", letter.event.id, err
                )
                self._write(conn, letter.without_value())
        except StorageError as err:
            if DUPLICATE_ID not in str(err):
                raise
            log.info("dead letter %s was written before (an input handled again): not again", letter.event.id)
            return
        self._letters += 1
        log_dead_letter(message, topic, outcome)

    def _write(self, conn: Connection, letter: DeadLetter) -> None:
        outbox = dataclasses.replace(self.outbox, serializer=letter.serializer)
        with conn.begin_nested():
            outbox.publish_many(conn, [letter.event])

    def _publish_new(self, conn: Connection, outputs: Sequence[Event]) -> None:
        """Outputs of an input handled again (a replay from older offsets): their derived ids are
        in the outbox already, and the outbox's unique ce_id keeps them out; the others go in."""
        for output in outputs:
            try:
                with conn.begin_nested():
                    self.outbox.publish_many(conn, [output])
            except StorageError as err:
                if DUPLICATE_ID not in str(err):
                    raise
                log.info("output %s was published before (an input handled again): not again", output.id)


def _in_savepoint(conn: Connection) -> Callable[[Callable[[], Outcome]], Outcome]:
    def attempt(call: Callable[[], Outcome]) -> Outcome:
        with conn.begin_nested():
            return call()

    return attempt
