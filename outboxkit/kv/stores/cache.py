"""An LRU cache of hot keys in front of a disk store, safe against the one race that matters: a
read that fetched a value from disk just before the writer replaced it must not put the old value
into the cache after the writer cleared it. A generation number, bumped by every write, tells."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from outboxkit.kv.stores.base import Versioned


class HotKeys:
    """Up to `capacity` entries, least recently read dropped first. Thread-safe."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"the cache capacity must be >= 0, not {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict[str, Versioned] = OrderedDict()
        self._lock = threading.Lock()
        self.generation = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> tuple[Versioned | None, int]:
        """(the cached entry or None, the generation to hand to `put` after reading the disk)."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
            return found, self.generation

    def put(self, key: str, entry: Versioned, generation: int) -> None:
        """Cache what a read found on disk, unless a write happened since it asked `get`."""
        if self.capacity == 0:
            return
        with self._lock:
            if generation != self.generation:
                return
            self._entries[key] = entry
            self._entries.move_to_end(key)
            if len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def written(self, keys: Iterable[str]) -> None:
        """The writer changed `keys` on disk: forget them, and refuse reads that began before."""
        with self._lock:
            self.generation += 1
            for key in keys:
                self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
