"""`KVStore`: a compacted topic loaded into a local store, then followed.

`start()` reads every partition up to the end offsets read at the start (read_committed, so
aborted values are never seen; loading is over when the consumer's *position* reaches those ends,
so commit markers and compaction gaps never leave it waiting) and sets the store ready; the same
background thread then applies live updates. Reads (`get`, `in`, `len`, `items`) come from the
local store and never touch the network; they are safe from any thread.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from outbox.errors import OutboxError
from outboxkit.kafka import clients
from outboxkit.kafka.admin import partition_counts, topic_config, topic_id
from outboxkit.kafka.catchup import CatchUp, read_to_end, watermarks
from outboxkit.kafka.errors import KafkaUnavailableError
from outboxkit.kafka.settings import KafkaSettings
from outboxkit.kv.changes import Decoded, decode_batch
from outboxkit.kv.checkpoint import distrust, retention_of
from outboxkit.kv.errors import NotReadyError, ReaderFailedError
from outboxkit.kv.stores.base import Checkpoint, Store, Versioned, versioned
from outboxkit.kv.stores.memory import MemoryStore
from outboxkit.kv.topic import refuse_uncompacted
from outboxkit.kv.values import ValueFormat

log = logging.getLogger("outboxkit.kv")

Version = tuple[int, int]
ChangeCallback = Callable[[str, Versioned | None, Versioned | None], None]
"""on_change(key, old, new): None for "absent" (new None: deleted)."""
ProgressCallback = Callable[[int, int], None]
"""on_progress(offsets read, offsets to read) while loading."""

IN_STEP_MARGIN = 5.0
"""Seconds taken off every "in step with the topic" moment a checkpoint records (checkpoint.py):
a record may be in flight between the broker and this reader when a fetch comes back empty."""

TOUCH_SECONDS = 5.0
"""How often an idle reader writes its checkpoint to say it is still in step with the topic."""


class KVStore:
    """One compacted topic as a local key-value store (see the module's docstring)."""

    def __init__(
        self,
        topic: str,
        *,
        kafka: KafkaSettings | str,
        store: Store | None = None,
        values: ValueFormat = "auto",
        on_progress: ProgressCallback | None = None,
        batch_size: int = 5000,
        poll_timeout: float = 0.05,
        load_timeout: float | None = 120.0,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        """`store`: where the data lives (MemoryStore by default; a disk store keeps a checkpoint
        and reads only the tail on restart). `values`: "auto" decodes each value by its content-type
        header (JSON or bytes), "json" / "bytes" read every value so without looking at headers.
        `load_timeout`: fail when loading makes no progress for that long."""
        self.topic = topic
        self.kafka = kafka
        self.store = store if store is not None else MemoryStore()
        self.values: ValueFormat = values
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.load_timeout = load_timeout
        self._settings = dict(settings or {})
        self._on_progress = on_progress
        self._callbacks: list[ChangeCallback] = []
        self._positions: dict[int, int] = {}
        self._ends: dict[int, int] = {}
        self._changed = threading.Condition()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._topic_id: str | None = None
        self._in_step_at = 0.0
        self._ends_read_at = 0.0
        self._touched = 0.0
        self._rate: deque[tuple[float, int]] = deque(maxlen=1024)
        self.applied = 0
        """Records applied since start (puts and deletes)."""
        self.skipped = 0
        """Records skipped since start (no key, undecodable value)."""
        self.load_seconds: float | None = None
        """How long loading took; None until ready."""
        self.loaded_from: str = ""
        """"start" or "checkpoint", and why a checkpoint was discarded."""

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> KVStore:
        """Start loading in the background thread; `wait_ready` waits for the end of it."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"kv-{self.topic}", daemon=True)
            self._thread.start()
        return self

    @property
    def ready(self) -> bool:
        """True once the topic is loaded up to the ends read at start (and stays so)."""
        return self._ready.is_set()

    @property
    def error(self) -> BaseException | None:
        """What stopped the background thread, if something did."""
        return self._error

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until loaded; NotReadyError after `timeout` seconds, ReaderFailedError if the
        background thread stopped on an error."""
        self._wait_until(
            self._ready.is_set,
            timeout,
            lambda: (
                f"is not loaded after {timeout:g} s ({self._progress_text()}); wait longer or check Kafka"
            ),
        )
        self._raise_failure()

    def wait_for(self, version: Version, timeout: float | None = 10.0) -> None:
        """Block until the record at `version` (partition, offset), e.g. one a writer returned,
        is applied here (read-your-writes); NotReadyError after `timeout`."""
        partition, offset = version
        self._wait_until(
            lambda: self._positions.get(partition, -1) > offset,
            timeout,
            lambda: (
                f"has not applied {partition}@{offset} after {timeout:g} s"
                f" (it is at {self._positions.get(partition, 'nothing')})"
            ),
        )

    def _wait_until(self, done: Callable[[], bool], timeout: float | None, late: Callable[[], str]) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not done():
                self._raise_failure()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise NotReadyError(f"the KV store of {self.topic!r} {late()}")
                self._changed.wait(0.5 if left is None else min(left, 0.5))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop following and close the store."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.store.close()

    def __enter__(self) -> KVStore:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- reads ----------------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        return self.store.value(key, default)

    def get_versioned(self, key: str) -> Versioned | None:
        """The value with its partition, offset and timestamp; None when absent."""
        return self.store.get(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self.store

    def __len__(self) -> int:
        return len(self.store)

    def items(self) -> Iterator[tuple[str, Any]]:
        """(key, value) of one consistent snapshot (later updates do not show in it)."""
        return ((key, entry.value) for key, entry in self.store.items())

    def on_change(self, callback: ChangeCallback) -> None:
        """Call `callback(key, old, new)` from the background thread after each applied change
        (loading included). An exception in it is logged, never stops the reader."""
        self._callbacks.append(callback)

    @property
    def positions(self) -> dict[int, int]:
        """partition -> next offset to apply."""
        with self._changed:
            return dict(self._positions)

    def lag(self) -> dict[int, int]:
        """partition -> records (offsets) between the applied position and the end last seen."""
        with self._changed:
            return {p: max(end - self._positions.get(p, 0), 0) for p, end in self._ends.items()}

    def updates_per_second(self, window: float = 10.0) -> float:
        """Changes applied per second over the last `window` seconds."""
        now = time.monotonic()
        with self._changed:
            return sum(n for t, n in self._rate if now - t <= window) / window

    # -- the background thread ------------------------------------------------------------------

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise ReaderFailedError(
                f"the KV store of {self.topic!r} stopped: {self._error}; it serves what it had"
            ) from self._error

    def _progress_text(self) -> str:
        lag = self.lag()
        return f"{sum(lag.values())} offsets behind" if lag else "topic not reached yet"

    def _run(self) -> None:
        consumer = clients.consumer(
            self.kafka,
            f"outboxkit-kv-{uuid.uuid4().hex[:12]}",  # assigned, never subscribed: no group is joined
            {"enable.partition.eof": True, **self._settings},
        )
        try:
            starts = self._prepare(consumer)
            self._load(consumer, starts)
            self._follow(consumer)
        except Exception as err:
            self._error = err
            if isinstance(err, OutboxError):  # a reason with what to do: no traceback needed
                log.error("the KV store of %r stopped: %s", self.topic, err)
            else:
                log.exception("the KV store of %r stopped", self.topic)
            with self._changed:
                self._changed.notify_all()
        finally:
            consumer.close()

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
        now = time.time()
        self._in_step_at = self._ends_read_at  # a load from the start: Kafka's own contract
        starts = {p: low for p, (low, _high) in bounds.items()}
        if saved is not None and (saved.positions or saved.topic_id):
            reason = distrust(
                saved,
                topic_id=self._topic_id,
                bounds=bounds,
                delete_retention_ms=retention_of(config),
                now=now,
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
        with self._changed:
            self._positions = dict(starts)
            self._ends = {p: high for p, (_low, high) in bounds.items()}
        return {(self.topic, p): offset for p, offset in starts.items()}

    def _load(self, consumer: Consumer, starts: dict[tuple[str, int], int]) -> None:
        began = time.monotonic()
        targets = {(self.topic, p): end for p, end in self._ends.items()}
        last_log = began
        reading = read_to_end(
            consumer,
            starts,
            batch_size=self.batch_size,
            poll_timeout=self.poll_timeout,
            timeout=self.load_timeout,
            targets=targets,
        )
        for records, progress in reading:
            self._apply(records, progress)
            if self._on_progress is not None:
                self._on_progress(progress.covered, progress.total)
            if time.monotonic() - last_log >= 2.0:
                last_log = time.monotonic()
                log.info("loading %s: %d of %d offsets", self.topic, progress.covered, progress.total)
            if self._stop.is_set():
                return
        if not consumer.assignment():  # nothing to read at start: read_to_end assigned nothing
            consumer.assign([TopicPartition(t, p, o) for (t, p), o in sorted(starts.items())])
        self._in_step_at = self._ends_read_at
        self._apply([], None, touch=True)  # the checkpoint says "in step" now
        self.load_seconds = time.monotonic() - began
        log.info(
            "loaded %s: %d keys in %.2f s (from %s)",
            self.topic,
            len(self.store),
            self.load_seconds,
            self.loaded_from,
        )
        self._ready.set()
        with self._changed:
            self._changed.notify_all()

    def _follow(self, consumer: Consumer) -> None:
        while not self._stop.is_set():
            asked_at = time.time()
            # consume(n, timeout) waits for n records or the whole timeout: following, that would
            # hold every update back by up to poll_timeout. Wait for the first, then take the rest.
            first = consumer.poll(self.poll_timeout)
            messages = [] if first is None else [first, *consumer.consume(self.batch_size - 1, 0)]
            records: list[Message] = []
            at_end = not messages
            for message in messages:
                error = message.error()
                if error is None:
                    records.append(message)
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end = True
                elif error.fatal():
                    raise KafkaUnavailableError(f"the Kafka consumer of {self.topic!r} failed: {error}")
                else:
                    log.warning("Kafka: %s", error)
            if at_end and not records:
                self._in_step_at = asked_at - IN_STEP_MARGIN
            self._apply(records, None, consumer)

    def _apply(
        self,
        records: list[Message],
        progress: CatchUp | None,
        consumer: Consumer | None = None,
        *,
        touch: bool = False,
    ) -> None:
        decoded = decode_batch(records, self.values)
        positions = dict(decoded.positions)
        if progress is not None:  # markers and gaps move positions without a record
            for (_t, p), reached in progress.reached.items():
                positions[p] = max(positions.get(p, 0), reached)
        elif consumer is not None:
            for found in consumer.position([TopicPartition(self.topic, p) for p in self._positions]):
                if found.offset >= 0:
                    positions[found.partition] = max(positions.get(found.partition, 0), found.offset)
            self._see_ends(consumer)
        events = self._events(decoded) if self._callbacks else []
        with self._changed:
            merged = {p: max(o, self._positions.get(p, 0)) for p, o in positions.items()}
            moved = any(self._positions.get(p) != o for p, o in merged.items())
        # An idle reader still says now and then that it is in step (checkpoint.py: saved_at).
        touch = touch or time.monotonic() - self._touched >= TOUCH_SECONDS
        if decoded.changes or moved or touch:
            checkpoint = Checkpoint(self._topic_id, {**self._positions, **merged}, self._in_step_at)
            self.store.apply(decoded.changes, checkpoint)
            self._touched = time.monotonic()
        with self._changed:
            self._positions.update(merged)
            for p, o in merged.items():
                self._ends[p] = max(self._ends.get(p, 0), o)
            self.applied += len(decoded.changes)
            self.skipped += decoded.skipped
            if decoded.changes:
                self._rate.append((time.monotonic(), len(decoded.changes)))
            self._changed.notify_all()
        for key, old, new in events:
            for callback in self._callbacks:
                try:
                    callback(key, old, new)
                except Exception:
                    log.exception("an on_change callback failed for key %r", key)

    def _see_ends(self, consumer: Consumer) -> None:
        """The partitions' ends as the consumer last heard them from the broker (no request)."""
        for partition in list(self._ends):
            try:
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), cached=True
                )
            except KafkaException:
                continue
            if high >= 0:
                with self._changed:
                    self._ends[partition] = max(self._ends[partition], high)

    def _events(self, decoded: Decoded) -> list[tuple[str, Versioned | None, Versioned | None]]:
        pending: dict[str, Versioned | None] = {}
        events = []
        for key, entry in decoded.changes:
            old = pending[key] if key in pending else self.store.get(key)
            new = None if entry is None else versioned(entry)
            pending[key] = new
            events.append((key, old, new))
        return events
