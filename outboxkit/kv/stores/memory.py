"""The in-memory store: a dict. Reads take no lock (a dict lookup is atomic in CPython); the
writer swaps entries under a lock that `items()` also takes, so a snapshot sees whole batches."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from outboxkit.kv.stores.base import Change, Checkpoint, Entry, Store, Versioned, versioned


class MemoryStore(Store):
    """Everything in memory; loaded from the topic's start on every start."""

    def __init__(self) -> None:
        self._data: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self._bytes = 0

    def get(self, key: str) -> Versioned | None:
        found = self._data.get(key)
        return None if found is None else versioned(found)

    def value(self, key: str, default: Any = None) -> Any:
        found = self._data.get(key)
        return default if found is None else found[0]

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def items(self) -> list[tuple[str, Versioned]]:
        with self._lock:
            return [(key, versioned(entry)) for key, entry in self._data.items()]

    def apply(self, changes: Sequence[Change], checkpoint: Checkpoint) -> None:
        del checkpoint  # kept by the reader; nothing survives a restart here
        data = self._data
        with self._lock:
            for key, entry in changes:
                old = data.pop(key, None) if entry is None else data.get(key)
                if entry is not None:
                    data[key] = entry
                    self._bytes += entry[4]
                if old is not None:
                    self._bytes -= old[4]

    def checkpoint(self) -> Checkpoint | None:
        return None

    def reset(self) -> None:
        with self._lock:
            self._data = {}
            self._bytes = 0

    def size_bytes(self) -> int:
        return self._bytes
