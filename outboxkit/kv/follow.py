"""The background thread of a `KVStore` (reader.py): check the topic and the checkpoint, load every
partition up to the ends read at the start, then follow.

Loading is over when the consumer's *position* reaches those ends (catchup.CatchUp), so commit
markers and compaction gaps never leave it waiting. Following, it looks at the topic's metadata
every `partition_check_seconds`: partitions added since are assigned from their beginning (their
first offset still in the log), and a look that fails marks Kafka unreachable (`unreachable_since`,
`kafka_problem`) until one succeeds again; so does librdkafka's "all brokers down" event. Reads are
served from the store all the while.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from outbox.errors import OutboxError
from outboxkit.kafka import clients
from outboxkit.kafka.admin import partition_counts, topic_config, topic_id
from outboxkit.kafka.catchup import CatchUp, watermarks
from outboxkit.kafka.errors import KafkaUnavailableError
from outboxkit.kafka.settings import KafkaSettings
from outboxkit.kv.changes import Decoded, decode_batch
from outboxkit.kv.checkpoint import distrust, retention_of
from outboxkit.kv.stores.base import Checkpoint, Store, Versioned
from outboxkit.kv.stores.entry import unpacked
from outboxkit.kv.topic import refuse_uncompacted
from outboxkit.kv.values import ValueFormat

log = logging.getLogger("outboxkit.kv")

ChangeCallback = Callable[[str, Versioned | None, Versioned | None], None]
"""on_change(key, old, new): None for "absent" (new None: deleted)."""
ProgressCallback = Callable[[int, int], None]
"""on_progress(offsets read, offsets to read) while loading."""

IN_STEP_MARGIN = 5.0
"""Seconds taken off every "in step with the topic" moment a checkpoint records (checkpoint.py):
a record may be in flight between the broker and this reader when a fetch comes back empty."""

TOUCH_SECONDS = 5.0
"""How often an idle reader writes its checkpoint to say it is still in step with the topic."""

AWAY_CHECK_SECONDS = 1.0
"""While Kafka is unreachable, how often the metadata is asked for (to tell when it is back)."""

UNREACHABLE = {KafkaError._ALL_BROKERS_DOWN}
"""Consumer events that mean Kafka cannot be reached (one broker's disconnect does not)."""


class Follower:
    """Loads `topic` into `store` and follows it, in the thread that runs `run()`. Every field
    that readers look at changes under `changed` (a condition notified after each batch)."""

    def __init__(
        self,
        topic: str,
        kafka: KafkaSettings | str,
        store: Store,
        *,
        values: ValueFormat,
        batch_size: int,
        poll_timeout: float,
        load_timeout: float | None,
        partition_check_seconds: float,
        settings: Mapping[str, Any],
        on_progress: ProgressCallback | None,
    ) -> None:
        self.topic = topic
        self.kafka = kafka
        self.store = store
        self.values: ValueFormat = values
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.load_timeout = load_timeout
        self.partition_check_seconds = partition_check_seconds
        self.settings = dict(settings)
        self.on_progress = on_progress
        self.callbacks: list[ChangeCallback] = []
        self.changed = threading.Condition()
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.positions: dict[int, int] = {}
        self.ends: dict[int, int] = {}
        self.rate: deque[tuple[float, int]] = deque(maxlen=1024)
        self.error: BaseException | None = None
        self.applied = 0
        self.skipped = 0
        self.load_seconds: float | None = None
        self.loaded_from = ""
        self.unreachable_since: float | None = None
        self.kafka_problem: str | None = None
        self._topic_id: str | None = None
        self._in_step_at = 0.0
        self._ends_read_at = 0.0
        self._touched = 0.0

    def run(self) -> None:
        consumer = clients.consumer(
            self.kafka,
            f"outboxkit-kv-{uuid.uuid4().hex[:12]}",  # assigned, never subscribed: no group is joined
            {"enable.partition.eof": True, **self.settings},
        )
        try:
            starts = self._prepare(consumer)
            if self._load(consumer, starts):
                self._follow(consumer)
        except Exception as err:
            self.error = err
            if isinstance(err, OutboxError):  # a reason with what to do: no traceback needed
                log.error("the KV store of %r stopped: %s", self.topic, err)
            else:
                log.exception("the KV store of %r stopped", self.topic)
            with self.changed:
                self.changed.notify_all()
        finally:
            consumer.close()

    # -- start: topic, checkpoint, load ------------------------------------------------------------

    def _prepare(self, consumer: Consumer) -> dict[tuple[str, int], int]:
        """Check the topic, decide on the checkpoint, return where each partition starts."""
        admin = clients.admin(self.kafka)
        count = partition_counts(consumer, [self.topic])[self.topic]
        config = topic_config(admin, self.topic)
        refuse_uncompacted(self.topic, config)
        self._topic_id = topic_id(admin, self.topic)
        # Every record at or past the ends read now is written after this moment (less a margin
        # for fetches in flight and clocks): the "in step" moment once loading has reached them.
        self._ends_read_at = time.time() - IN_STEP_MARGIN
        bounds = {
            p: b for (_t, p), b in watermarks(consumer, [(self.topic, p) for p in range(count)]).items()
        }
        saved = self.store.checkpoint()
        self._in_step_at = self._ends_read_at  # a load from the start: Kafka's own contract
        starts = {p: low for p, (low, _high) in bounds.items()}
        if saved is not None and (saved.positions or saved.topic_id):
            reason = distrust(
                saved,
                topic_id=self._topic_id,
                bounds=bounds,
                delete_retention_ms=retention_of(config),
                now=time.time(),
            )
            if reason is None:
                starts.update(saved.positions)
                self._in_step_at = saved.saved_at
                self.loaded_from = "checkpoint"
                log.info("reading on from the local checkpoint", extra={"topic": self.topic})
            else:
                self.loaded_from = f"start (checkpoint discarded: {reason})"
                log.warning("discarded the local checkpoint, rebuilding from the start: %s", reason)
                self.store.reset()
        else:
            self.loaded_from = "start"
        with self.changed:
            self.positions = dict(starts)
            self.ends = {p: high for p, (_low, high) in bounds.items()}
        return {(self.topic, p): offset for p, offset in starts.items()}

    def _load(self, consumer: Consumer, starts: dict[tuple[str, int], int]) -> bool:
        """Read up to the ends read at the start; False when stopped before."""
        began = last_log = last_move = time.monotonic()
        progress = CatchUp(starts, {(self.topic, p): end for p, end in self.ends.items()})
        consumer.assign([TopicPartition(t, p, o) for (t, p), o in sorted(starts.items())])
        covered = progress.covered
        while not progress.done:
            if self.stop.is_set():
                return False
            decoded = decode_batch(consumer.consume(self.batch_size, self.poll_timeout), self.values)
            self._events(decoded.events)
            progress.observe(consumer, decoded.events)
            self._apply(decoded, consumer, progress.reached)
            now = time.monotonic()
            if progress.covered != covered:
                last_move, covered = now, progress.covered
            elif self.load_timeout is not None and now - last_move > self.load_timeout:
                raise KafkaUnavailableError(
                    f"loading made no progress for {self.load_timeout:.0f} s; still below their end: "
                    + ", ".join(
                        f"{t}[{p}] at {progress.reached[(t, p)]} of {progress.targets[(t, p)]}"
                        for t, p in sorted(progress.pending)
                    )
                )
            if self.on_progress is not None:
                self.on_progress(progress.covered, progress.total)
            if now - last_log >= 2.0:
                last_log = now
                log.info("loading %s: %d of %d offsets", self.topic, progress.covered, progress.total)
        self._in_step_at = self._ends_read_at
        self._apply(Decoded(), consumer, touch=True)  # the checkpoint says "in step" now
        self.load_seconds = time.monotonic() - began
        give_back_memory()
        log.info(
            "loaded %s: %d keys in %.2f s (from %s)",
            self.topic,
            len(self.store),
            self.load_seconds,
            self.loaded_from,
        )
        self.ready.set()
        with self.changed:
            self.changed.notify_all()
        return True

    # -- following -----------------------------------------------------------------------------

    def _follow(self, consumer: Consumer) -> None:
        next_look = time.monotonic() + self.partition_check_seconds
        while not self.stop.is_set():
            if time.monotonic() >= next_look:
                self._look(consumer)
                pause = self.partition_check_seconds
                if self.unreachable_since is not None:
                    pause = min(pause, AWAY_CHECK_SECONDS)
                next_look = time.monotonic() + pause
            asked_at = time.time()
            # consume(n, timeout) waits for n records or the whole timeout: following, that would
            # hold every update back by up to poll_timeout. Wait for the first, then take the rest.
            first = consumer.poll(self.poll_timeout)
            messages = [] if first is None else [first, *consumer.consume(self.batch_size - 1, 0)]
            decoded = decode_batch(messages, self.values)
            at_end = self._events(decoded.events) or not messages
            records = len(messages) - len(decoded.events)
            if at_end and not records and self.unreachable_since is None:
                self._in_step_at = asked_at - IN_STEP_MARGIN
            self._apply(decoded, consumer)

    def _events(self, events: list[Message]) -> bool:
        """Handle error events; True when one says a partition's end is reached."""
        at_end = False
        for message in events:
            error = message.error()
            if error is None:
                continue
            if error.code() == KafkaError._PARTITION_EOF:
                at_end = True
            elif error.fatal():
                raise KafkaUnavailableError(f"the Kafka consumer of {self.topic!r} failed: {error}")
            elif error.code() in UNREACHABLE:
                self._away(error.str())
            else:
                log.warning("Kafka: %s", error)
        return at_end

    def _look(self, consumer: Consumer) -> None:
        """One look at the metadata: Kafka reachable or not, and partitions added since."""
        timeout = max(min(5.0, self.partition_check_seconds), 1.0)
        try:
            count = partition_counts(consumer, [self.topic], timeout=timeout)[self.topic]
        except KafkaUnavailableError as err:
            self._away(str(err))
            return
        except OutboxError as err:  # the topic deleted meanwhile: Kafka answers, the reader serves on
            self._back()
            log.warning("cannot look for new partitions of %s: %s", self.topic, err)
            return
        self._back()
        new = [(self.topic, p) for p in range(count) if p not in self.positions]
        if not new:
            return
        try:
            found = watermarks(consumer, new, timeout=timeout)
        except KafkaUnavailableError as err:  # e.g. no leader yet: Kafka itself answers
            log.warning("cannot read where new partitions of %s begin, next look: %s", self.topic, err)
            return
        starts = {p: low for (_t, p), (low, _high) in found.items()}
        consumer.incremental_assign([TopicPartition(self.topic, p, o) for p, o in sorted(starts.items())])
        with self.changed:
            self.positions.update(starts)
            self.ends.update({p: high for (_t, p), (_low, high) in found.items()})
        log.info("following new partitions", extra={"topic": self.topic, "partitions": sorted(starts)})

    def _away(self, problem: str) -> None:
        with self.changed:
            self.kafka_problem = problem
            if self.unreachable_since is None:
                self.unreachable_since = time.time()
                log.warning("Kafka is unreachable, serving what the store has: %s", problem)

    def _back(self) -> None:
        if self.unreachable_since is None:
            return
        with self.changed:
            away = time.time() - self.unreachable_since
            self.unreachable_since = self.kafka_problem = None
        log.info("Kafka is reachable again after %.1f s", away, extra={"topic": self.topic})

    # -- applying ------------------------------------------------------------------------------

    def _apply(
        self,
        decoded: Decoded,
        consumer: Consumer,
        reached: Mapping[tuple[str, int], int] | None = None,
        *,
        touch: bool = False,
    ) -> None:
        positions: dict[int, int] = {}
        if reached is not None:  # loading: markers and gaps move positions without a record
            positions = {p: o for (_t, p), o in reached.items()}
        else:
            self._see_ends(consumer)
        # The consumer's position covers every record it handed out, all of them in `decoded`.
        for found in consumer.position([TopicPartition(self.topic, p) for p in self.positions]):
            if found.offset >= 0:
                positions[found.partition] = max(positions.get(found.partition, 0), found.offset)
        changes = decoded.changes
        events = self._changes(decoded) if self.callbacks else []
        with self.changed:
            merged = {p: max(o, self.positions.get(p, 0)) for p, o in positions.items()}
            moved = any(self.positions.get(p) != o for p, o in merged.items())
        # An idle reader still says now and then that it is in step (checkpoint.py: saved_at).
        touch = touch or time.monotonic() - self._touched >= TOUCH_SECONDS
        if changes or moved or touch:
            checkpoint = Checkpoint(self._topic_id, {**self.positions, **merged}, self._in_step_at)
            self.store.apply(changes, checkpoint)
            self._touched = time.monotonic()
        # Callbacks run before the positions move: wait_for() returns once what they derive
        # (a cache they invalidate) has seen the version too.
        for key, old, new in events:
            for callback in self.callbacks:
                try:
                    callback(key, old, new)
                except Exception:
                    log.exception("an on_change callback failed for key %r", key)
        with self.changed:
            self.positions.update(merged)
            for p, o in merged.items():
                self.ends[p] = max(self.ends.get(p, 0), o)
            self.applied += len(changes)
            self.skipped += decoded.skipped
            if changes:
                self.rate.append((time.monotonic(), len(changes)))
            self.changed.notify_all()

    def _see_ends(self, consumer: Consumer) -> None:
        """The partitions' ends as the consumer last heard them from the broker (no request)."""
        for partition in list(self.ends):
            try:
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), cached=True
                )
            except KafkaException:
                continue
            if high >= 0:
                with self.changed:
                    self.ends[partition] = max(self.ends[partition], high)

    def _changes(self, decoded: Decoded) -> list[tuple[str, Versioned | None, Versioned | None]]:
        pending: dict[str, Versioned | None] = {}
        events = []
        for key, entry in decoded.changes:
            old = pending[key] if key in pending else self.store.get(key)
            new = None if entry is None else unpacked(key, entry)
            pending[key] = new
            events.append((key, old, new))
        return events


def give_back_memory() -> None:
    """Return the memory freed after a load to the system (glibc keeps freed pages of its heap:
    the fetch buffers and per-record objects of the load would stay in the RSS). Nothing on a C
    library without malloc_trim (musl, macOS)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)
