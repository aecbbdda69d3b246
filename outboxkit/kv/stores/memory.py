"""The in-memory store: a dict of packed entries (`entry.py`: one bytes object per key). Reads take
no lock (a dict lookup is atomic in CPython); the writer swaps entries under a lock that `items()`
also takes, so a snapshot sees whole batches."""

from __future__ import annotations

import threading
from typing import Any

import orjson

from outboxkit.kv.stores.base import Changes, Checkpoint, Entry, Store, Versioned
from outboxkit.kv.stores.entry import BYTES, HEADER_SIZE, key_size, unpacked

_FORM = HEADER_SIZE - 1


class MemoryStore(Store):
    """Everything in memory; loaded from the topic's start on every start."""

    def __init__(self) -> None:
        self._data: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self._bytes = 0

    def get(self, key: str) -> Versioned | None:
        found = self._data.get(key)
        return None if found is None else unpacked(key, found)

    def value(self, key: str, default: Any = None) -> Any:
        # entry.value_of inlined: this is every get() of the reader
        found = self._data.get(key)
        if found is None:
            return default
        if found[_FORM] == BYTES:
            return found[HEADER_SIZE:]
        return orjson.loads(memoryview(found)[HEADER_SIZE:])

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def items(self) -> list[tuple[str, Versioned]]:
        with self._lock:
            entries = list(self._data.items())
        return [(key, unpacked(key, entry)) for key, entry in entries]

    def apply(self, changes: Changes, checkpoint: Checkpoint) -> None:
        del checkpoint  # kept by the reader; nothing survives a restart here
        data = self._data
        grown = 0
        with self._lock:
            for key, entry in changes:
                old = data.pop(key, None) if entry is None else data.get(key)
                if entry is not None:
                    data[key] = entry
                    grown += len(entry) - HEADER_SIZE
                    if old is None:
                        grown += key_size(key)
                if old is not None:
                    grown -= len(old) - HEADER_SIZE
                    if entry is None:
                        grown -= key_size(key)
            self._bytes += grown

    def checkpoint(self) -> Checkpoint | None:
        return None

    def reset(self) -> None:
        with self._lock:
            self._data = {}
            self._bytes = 0

    def size_bytes(self) -> int:
        return self._bytes
