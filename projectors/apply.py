"""Applying records to a read model: one database transaction per batch, offsets stored inside it.

Fast path: the whole batch in one transaction. If anything in it fails, the transaction is rolled
back and the batch is applied again record by record (slow path), each record in its own
transaction, so the records before a bad one are applied and only the bad one is retried and,
in the end, dead-lettered (or the projector stops).

Fencing: each transaction first locks the offset rows of its partitions and checks they still hold
the offsets this instance expects. Another instance that took the partition over (a rebalance, a
paused "zombie", a rebuild's swap) has moved them, so this transaction applies nothing
(`FencedError`). The row locks also serialise two instances that believe they own one partition.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from confluent_kafka import Message
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from outboxkit.kafka.dead_letter import DeadLetterPublisher
from outboxkit.kafka.errors import UndecodableRecordError
from outboxkit.kafka.records import ReceivedEvent, decode_message, where
from projectors import dead_letters
from projectors.config import ProjectorConfig
from projectors.errors import HandlerFailedError, ProjectorError
from projectors.metrics import ProjectorMetrics
from projectors.projector import Projector
from projectors.schema import MIGRATE, MissingTablesError, schema_problem
from projectors.tracing import HandlerSpans
from projectors.tracking import OffsetStore, TopicPartition

log = logging.getLogger(__name__)

TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock
PRUNE_EVERY = 1000
"""Batches between two prunes of old applied event ids."""


class FencedError(ProjectorError):
    """The stored offsets moved under this instance: it no longer owns these partitions' positions."""

    def __init__(self, moved: Mapping[TopicPartition, tuple[int, int | None]]) -> None:
        self.moved = dict(moved)
        super().__init__(f"offsets moved by another instance (expected, stored): {self.moved}")


def is_transient(error: BaseException) -> bool:
    """A database failure that says nothing about the event: retry without counting it."""
    if not isinstance(error, DBAPIError):
        return False
    sqlstate = getattr(error.orig, "sqlstate", None)
    return bool(error.connection_invalidated) or sqlstate in TRANSIENT_SQLSTATES


class BatchApplier:
    """Applies batches of one projector through `engine`; `setup` runs first in each transaction."""

    def __init__(
        self,
        projector: Projector,
        engine: Engine,
        store: OffsetStore,
        dead_letters: DeadLetterPublisher,
        metrics: ProjectorMetrics,
        *,
        setup: Callable[[Connection], None] | None = None,
        sleep: Callable[[float], None] | None = None,
        spans: HandlerSpans | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """`stop`: once set, no further record is applied and back-off waits end at once (the
        records not applied stay below the stored offset, for the next run); `sleep` replaces the
        back-off wait (tests)."""
        self.projector = projector
        self.config: ProjectorConfig = projector.config
        self.engine = engine
        self.store = store
        self.dead_letters = dead_letters
        self.metrics = metrics
        self._setup = setup
        self.stop = stop or threading.Event()
        self._sleep = sleep
        self._batches = 0
        self.spans = spans or HandlerSpans(projector.name, projector.group_id)

    def apply(
        self, records: Sequence[Message], expected: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        """Apply `records` (in order, all of partitions in `expected`); return the new next offsets.

        Raises FencedError when the stored offsets differ from `expected`; HandlerFailedError when a
        handler kept failing and the projector is configured to stop.
        """
        started = time.perf_counter()
        try:
            positions = self._apply_batch(records, expected)
        except FencedError:
            raise
        except Exception as err:
            log.info("batch of %d records failed (%s); applying them one by one", len(records), err)
            positions = self._apply_one_by_one(records, expected)
            if self.stop.is_set():
                return positions
        self.metrics.batch_seconds.labels(self.projector.name).observe(time.perf_counter() - started)
        self._batches += 1
        if self.config.dedupe_event_ids and self._batches % PRUNE_EVERY == 0:
            with self.engine.begin() as conn:
                self.store.prune(conn, self.config.dedupe_retention)
        return positions

    def _begin(self, conn: Connection, expected: Mapping[TopicPartition, int]) -> None:
        if self._setup is not None:
            self._setup(conn)
        stored = self.store.load(conn, expected, lock=True)
        moved = {tp: (n, stored.get(tp)) for tp, n in expected.items() if stored.get(tp) != n}
        if moved:
            raise FencedError(moved)

    def _apply_batch(
        self, records: Sequence[Message], expected: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        events = [decode_message(m) for m in records]
        positions = dict(expected)
        for m in records:
            positions[where(m)] = (m.offset() or 0) + 1
        with self.engine.begin() as conn:
            self._begin(conn, expected)
            self._run_handlers(conn, self._fresh(conn, events))
            self.store.save(conn, positions)
        return positions

    def _fresh(self, conn: Connection, events: Sequence[ReceivedEvent]) -> list[ReceivedEvent]:
        """Events not applied before (by ce_id), each once; remembers them as applied."""
        if not self.config.dedupe_event_ids:
            return list(events)
        new = self.store.remember(conn, (e.id for e in events))
        fresh: list[ReceivedEvent] = []
        for event in events:
            if event.id in new:
                new.discard(event.id)  # a second copy in this batch is a duplicate too
                fresh.append(event)
            else:
                self.metrics.duplicates.labels(self.projector.name, event.topic).inc()
        return fresh

    def _run_handlers(self, conn: Connection, events: Sequence[ReceivedEvent]) -> None:
        # Runs of one type keep the order of the partition: a batch handler gets consecutive events.
        for event_type, run in itertools.groupby(events, key=lambda e: e.type):
            handler = self.projector.handler(event_type)
            if handler is None:
                continue
            if handler.batch:
                events_of_type = list(run)
                with self.spans.batch(events_of_type):
                    handler.function(events_of_type, conn)
            else:
                for event in run:
                    with self.spans.one(event):
                        handler.function(event, conn)
        for topic, count in Counter(e.topic for e in events).items():
            self.metrics.applied.labels(self.projector.name, topic).inc(count)

    def _apply_one_by_one(
        self, records: Sequence[Message], expected: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        positions = dict(expected)
        for message in records:
            if self.stop.is_set():
                break
            tp = where(message)
            applied = self._apply_one(message, positions[tp])
            if applied is None:  # stopped while retrying: this record and the rest wait
                break
            positions[tp] = applied
        return positions

    def _pause(self, seconds: float) -> bool:
        """Wait `seconds` before a retry; False when stopped meanwhile (a signal ends the wait)."""
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            self.stop.wait(seconds)
        return not self.stop.is_set()

    def _apply_one(self, message: Message, expected: int) -> int | None:
        """Apply one record (retried, then dead-lettered or stopping); its next offset, or None
        when `stop` was set before it was applied."""
        tp, offset = where(message), message.offset() or 0
        after = {tp: offset + 1}
        try:
            event = decode_message(message)
        except UndecodableRecordError as err:
            self._dead_letter(message, None, err, 1, expected)
            return offset + 1
        attempt = 0
        while True:
            try:
                with self.engine.begin() as conn:
                    self._begin(conn, {tp: expected})
                    self._run_handlers(conn, self._fresh(conn, [event]))
                    self.store.save(conn, after)
                return offset + 1
            except FencedError:
                raise
            except Exception as err:
                if is_transient(err):
                    log.warning("transient database failure at %s@%d, retrying: %s", tp, offset, err)
                    if not self._pause(self.config.retry_backoff_max):
                        return None
                    continue
                attempt += 1
                if attempt > self.config.max_retries:
                    problem = schema_problem(err)
                    if problem is not None:  # not the event's fault: dead-lettering would take them all
                        raise MissingTablesError(
                            f"projector {self.projector.name!r}: {problem} (at {tp[0]}[{tp[1]}]@{offset}, "
                            f"not applied): {MIGRATE}, and create the read model's tables"
                        ) from err
                    if self.config.on_failure == "stop":
                        raise HandlerFailedError(
                            f"projector {self.projector.name!r}: {event.type} {event.id} at "
                            f"{tp[0]}[{tp[1]}]@{offset} failed {attempt} times: {err}"
                        ) from err
                    self._dead_letter(message, event, err, attempt, expected)
                    return offset + 1
                log.warning("handler failed at %s@%d (attempt %d): %s", tp, offset, attempt, err)
                if not self._pause(self.config.backoff(attempt)):
                    return None

    def _dead_letter(
        self,
        message: Message,
        event: ReceivedEvent | None,
        error: BaseException,
        attempts: int,
        expected: int,
    ) -> None:
        """Publish to the dead-letter topic, then store the offset past it (at least once to the
        DLQ) and remember the event as dead-lettered (projectors/dead_letters.py); an event the
        projector (or its rebuild) remembers is not published to the dead-letter topic again."""
        tp, offset = where(message), message.offset() or 0
        with self.engine.begin() as conn:
            # Fence first, so an instance that lost the partition does not dead-letter its records.
            self._begin(conn, {tp: expected})
            names = {self.projector.name, self.store.projector}
            if event is not None and dead_letters.dead_lettered_before(conn, names, event.id):
                topic = self.dead_letters.topic_for(tp[0])
                log.info(
                    "%s %s failed again; dead-lettered before, not published again", event.type, event.id
                )
            else:
                topic = self.dead_letters.send(message, error, attempts)
            if event is not None:
                dead_letters.remember(
                    conn, self.store.projector, event, message, error=error, attempts=attempts, topic=topic
                )
            self.store.save(conn, {tp: offset + 1})
        self.metrics.dead_lettered.labels(self.projector.name, tp[0]).inc()
        log.error("dead-lettered %s[%d]@%d to %s after %d attempts: %s", *tp, offset, topic, attempts, error)
