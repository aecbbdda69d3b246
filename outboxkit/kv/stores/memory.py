"""The in-memory store: a dict of packed entries (`entry.py`: one bytes object per key). Reads take
no lock (a dict lookup is atomic in CPython); the writer swaps entries under a lock that `items()`
also takes, so a snapshot sees whole batches."""

from __future__ import annotations

import operator
import threading
from itertools import compress, repeat
from typing import Any, cast

import orjson

from outboxkit.kv.stores.base import Changes, Checkpoint, Entry, Store, Versioned
from outboxkit.kv.stores.entry import BYTES, HEADER_SIZE, key_size, unpacked

_FORM = HEADER_SIZE - 1


class MemoryStore(Store):
    """Everything in memory; loaded from the topic's start on every start."""

    batch_size = 500
    """Small enough that a batch's records (a tracked `Message` and timestamp tuple each) are freed
    before the garbage collector's youngest generation fills (700): a load of 1M records then runs
    about 6 collections instead of some 1,400, which kept every batch's records alive through them.
    Larger batches bring nothing here (a dict.update per batch); the disk store keeps 5,000 (one
    LMDB write transaction per batch: 500 loaded at 0.5-0.8x its rate)."""

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
        with self._lock:
            if None in changes.entries:
                self._bytes += self._one_by_one(changes)
            else:
                self._bytes += self._puts(changes)

    def _puts(self, changes: Changes) -> int:
        """Puts only (a load's batches): the work done in C loops over the batch; the byte count
        from the batch's last entry per key against what the store had before."""
        data = self._data
        latest = cast("dict[str, Entry]", dict(zip(changes.keys, changes.entries, strict=True)))
        olds = list(map(data.get, latest))
        data.update(latest)
        grown = sum(map(len, latest.values())) - HEADER_SIZE * len(latest)
        replaced = [old for old in olds if old is not None]
        grown -= sum(map(len, replaced)) - HEADER_SIZE * len(replaced)
        added = list(compress(latest, map(operator.is_, olds, repeat(None))))
        if all(map(str.isascii, added)):
            return grown + sum(map(len, added))
        return grown + sum(len(key.encode()) for key in added)

    def _one_by_one(self, changes: Changes) -> int:
        data = self._data
        get, pop = data.get, data.pop
        grown = 0
        for key, entry in zip(changes.keys, changes.entries, strict=True):
            if entry is not None:
                old = get(key)
                data[key] = entry
                if old is None:
                    grown += len(entry) - HEADER_SIZE + key_size(key)
                else:
                    grown += len(entry) - len(old)
            else:
                old = pop(key, None)
                if old is not None:
                    grown -= len(old) - HEADER_SIZE + key_size(key)
        return grown

    def checkpoint(self) -> Checkpoint | None:
        return None

    def reset(self) -> None:
        with self._lock:
            self._data = {}
            self._bytes = 0

    def size_bytes(self) -> int:
        return self._bytes
