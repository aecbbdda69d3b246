"""The in-memory store: a dict. Reads take no lock (a dict lookup is atomic in CPython); the
writer swaps entries under a lock that `items()` also takes, so a snapshot sees whole batches."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from outboxkit.kv.stores.base import Change, Checkpoint, Store, Versioned


class MemoryStore(Store):
    """Everything in memory; loaded from the topic's start on every start."""

    def __init__(self) -> None:
        self._data: dict[str, Versioned] = {}
        self._lock = threading.Lock()
        self._bytes = 0

    def get(self, key: str) -> Versioned | None:
        return self._data.get(key)

    def __len__(self) -> int:
        return len(self._data)

    def items(self) -> list[tuple[str, Versioned]]:
        with self._lock:
            return list(self._data.items())

    def apply(self, changes: Sequence[Change], checkpoint: Checkpoint) -> None:
        del checkpoint  # kept by the reader; nothing survives a restart here
        data = self._data
        with self._lock:
            for key, entry in changes:
                old = data.pop(key, None) if entry is None else data.get(key)
                if entry is not None:
                    data[key] = entry
                    self._bytes += entry.size
                if old is not None:
                    self._bytes -= old.size

    def checkpoint(self) -> Checkpoint | None:
        return None

    def reset(self) -> None:
        with self._lock:
            self._data = {}
            self._bytes = 0

    def size_bytes(self) -> int:
        return self._bytes
