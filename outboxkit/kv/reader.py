"""`KVStore`: a compacted topic loaded into a local store, then followed.

`start()` starts one background thread (follow.py) that reads every partition up to the end
offsets read at the start (read_committed, so aborted values are never seen; loading is over when
the consumer's *position* reaches those ends, so commit markers and compaction gaps never leave it
waiting), sets the store ready, and then applies live updates, partitions added later included.
Reads (`get`, `in`, `len`, `items`) come from the local store and never touch the network; they
are safe from any thread, and go on while Kafka is unreachable (`kafka_reachable`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from outboxkit.kafka.settings import KafkaSettings
from outboxkit.kv.errors import NotReadyError, ReaderFailedError
from outboxkit.kv.follow import ChangeCallback, Follower, ProgressCallback
from outboxkit.kv.stores.base import Store, Versioned
from outboxkit.kv.stores.memory import MemoryStore
from outboxkit.kv.values import ValueFormat

Version = tuple[int, int]

__all__ = ["ChangeCallback", "KVStore", "ProgressCallback", "Version"]


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
        batch_size: int | None = None,
        poll_timeout: float = 0.05,
        load_timeout: float | None = 120.0,
        partition_check_seconds: float = 10.0,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        """`store`: where the data lives (MemoryStore by default; a disk store keeps a checkpoint
        and reads only the tail on restart). `values`: "auto" decodes each value by its content-type
        header (JSON or bytes), "json" / "bytes" read every value so without looking at headers.
        `batch_size`: records per consume and apply (default: the store's, `Store.batch_size`).
        `load_timeout`: fail when loading makes no progress for that long.
        `partition_check_seconds`: how often the topic's metadata is looked at while following
        (partitions added to the topic are followed from their beginning; a failed look reports
        Kafka unreachable)."""
        self.topic = topic
        self.kafka = kafka
        self.store = store if store is not None else MemoryStore()
        self.values: ValueFormat = values
        self._follower = Follower(
            topic,
            kafka,
            self.store,
            values=values,
            batch_size=batch_size or self.store.batch_size,
            poll_timeout=poll_timeout,
            load_timeout=load_timeout,
            partition_check_seconds=partition_check_seconds,
            settings=settings or {},
            on_progress=on_progress,
        )
        self._changed = self._follower.changed
        self._thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> KVStore:
        """Start loading in the background thread; `wait_ready` waits for the end of it."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._follower.run, name=f"kv-{self.topic}", daemon=True)
            self._thread.start()
        return self

    @property
    def ready(self) -> bool:
        """True once the topic is loaded up to the ends read at start (and stays so)."""
        return self._follower.ready.is_set()

    @property
    def error(self) -> BaseException | None:
        """What stopped the background thread, if something did."""
        return self._follower.error

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until loaded; NotReadyError after `timeout` seconds, ReaderFailedError if the
        background thread stopped on an error."""
        self._wait_until(
            self._follower.ready.is_set,
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
            lambda: self._follower.positions.get(partition, -1) > offset,
            timeout,
            lambda: (
                f"has not applied {partition}@{offset} after {timeout:g} s"
                f" (it is at {self._follower.positions.get(partition, 'nothing')})"
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
        self._follower.stop.set()
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
        self._follower.callbacks.append(callback)

    # -- where it stands --------------------------------------------------------------------------

    @property
    def applied(self) -> int:
        """Records applied since start (puts and deletes)."""
        return self._follower.applied

    @property
    def skipped(self) -> int:
        """Records skipped since start (no key, undecodable value)."""
        return self._follower.skipped

    @property
    def load_seconds(self) -> float | None:
        """How long loading took; None until ready."""
        return self._follower.load_seconds

    @property
    def loaded_from(self) -> str:
        """ "start" or "checkpoint", and why a checkpoint was discarded."""
        return self._follower.loaded_from

    @property
    def kafka_reachable(self) -> bool:
        """False from a failed look at Kafka (or its "all brokers down") until one succeeds."""
        return self._follower.unreachable_since is None

    @property
    def unreachable_since(self) -> float | None:
        """Since when (seconds since the epoch) Kafka is unreachable; None while it is reachable."""
        return self._follower.unreachable_since

    @property
    def kafka_problem(self) -> str | None:
        """Why Kafka is unreachable (the last failure); None while it is reachable."""
        return self._follower.kafka_problem

    @property
    def positions(self) -> dict[int, int]:
        """partition -> next offset to apply."""
        with self._changed:
            return dict(self._follower.positions)

    def lag(self) -> dict[int, int]:
        """partition -> records (offsets) between the applied position and the end last seen."""
        follower = self._follower
        with self._changed:
            return {p: max(end - follower.positions.get(p, 0), 0) for p, end in follower.ends.items()}

    def updates_per_second(self, window: float = 10.0) -> float:
        """Changes applied per second over the last `window` seconds."""
        now = time.monotonic()
        with self._changed:
            return sum(n for t, n in self._follower.rate if now - t <= window) / window

    def _raise_failure(self) -> None:
        error = self._follower.error
        if error is not None:
            raise ReaderFailedError(
                f"the KV store of {self.topic!r} stopped: {error}; it serves what it had"
            ) from error

    def _progress_text(self) -> str:
        lag = self.lag()
        return f"{sum(lag.values())} offsets behind" if lag else "topic not reached yet"
