"""The memory store (pure): changes and deletes, byte count, snapshots, and entries of bytes or
scalar values that Python's cyclic garbage collector stops tracking (so a large store of them adds
nothing to its collections)."""

from __future__ import annotations

import gc

from outboxkit.kv import Checkpoint, MemoryStore, Versioned


def test_puts_deletes_and_the_byte_count() -> None:
    store = MemoryStore()
    store.apply(
        [("a", (b"1", 0, 5, 10, 2)), ("b", ({"x": 1}, 1, 7, 11, 9)), ("a", (b"22", 0, 6, 12, 3))],
        Checkpoint(None),
    )
    assert store.get("a") == Versioned(b"22", 0, 6, 12, 3) and store.get("a").version == (0, 6)  # type: ignore[union-attr]
    assert store.value("b") == {"x": 1} and store.value("zz", "absent") == "absent"
    assert "a" in store and "zz" not in store and len(store) == 2 and store.size_bytes() == 12
    snapshot = store.items()
    store.apply([("a", None), ("missing", None)], Checkpoint(None))
    assert "a" not in store and len(store) == 1 and store.size_bytes() == 9
    assert dict(snapshot)["a"].value == b"22", "a snapshot stays as it was"
    store.reset()
    assert len(store) == 0 and store.size_bytes() == 0 and store.checkpoint() is None


def test_entries_of_atomic_values_leave_the_garbage_collector() -> None:
    store = MemoryStore()
    store.apply(
        [(f"k{i}", (b"v" * 100, i % 3, i, 1_796_000_000_000 + i, 103)) for i in range(1000)], Checkpoint(None)
    )
    store.apply([("json-scalar", ("dark", 0, 1000, 0, 20))], Checkpoint(None))
    # (A JSON object or array value stays tracked: a tuple holding a dict or list always is.)
    gc.collect()
    data = store._data
    assert not gc.is_tracked(data), "the dict of entries is not walked by full collections"
    assert not any(gc.is_tracked(entry) for entry in data.values())
