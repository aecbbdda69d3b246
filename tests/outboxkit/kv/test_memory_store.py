"""The memory store (pure): changes and deletes, byte count, snapshots, values decoded when read,
and packed entries that Python's cyclic garbage collector never tracks, JSON objects included (so
a large store adds nothing to its collections)."""

from __future__ import annotations

import gc

from outboxkit.kv import Checkpoint, MemoryStore, Versioned
from outboxkit.kv.stores.base import Changes
from outboxkit.kv.stores.entry import HEADER_SIZE, JSON, packed


def test_puts_deletes_and_the_byte_count() -> None:
    store = MemoryStore()
    store.apply(
        Changes.of(
            [
                ("a", packed(b"1", 0, 5, 10)),
                ("b", packed(b'{"x":1}', 1, 7, 11, JSON)),
                ("a", packed(b"22", 0, 6, 12)),
            ]
        ),
        Checkpoint(None),
    )
    assert store.get("a") == Versioned(b"22", 0, 6, 12, 3) and store.get("a").version == (0, 6)  # type: ignore[union-attr]
    assert store.value("b") == {"x": 1} and store.value("zz", "absent") == "absent"
    assert store.get("b") == Versioned({"x": 1}, 1, 7, 11, 8)
    assert "a" in store and "zz" not in store and len(store) == 2 and store.size_bytes() == 11
    snapshot = store.items()
    store.apply(Changes.of([("a", None), ("missing", None)]), Checkpoint(None))
    assert "a" not in store and len(store) == 1 and store.size_bytes() == 8
    assert dict(snapshot)["a"].value == b"22", "a snapshot stays as it was"
    store.apply(Changes.of([("ü", packed(b"xy", 0, 9, 13))]), Checkpoint(None))
    assert store.size_bytes() == 8 + 2 + 2, "a key counts its UTF-8 bytes"
    store.apply(
        Changes.of([("b", packed(b"1234", 1, 8, 14)), ("ü", packed(b"z", 0, 10, 15))]), Checkpoint(None)
    )
    assert store.size_bytes() == (1 + 4) + (2 + 1) and store.value("b") == b"1234" and len(store) == 2
    store.reset()
    assert len(store) == 0 and store.size_bytes() == 0 and store.checkpoint() is None


def test_each_read_of_a_json_value_is_a_copy_of_its_own() -> None:
    store = MemoryStore()
    store.apply(Changes.of([("site", packed(b'{"theme":"dark"}', 0, 1, 2, JSON))]), Checkpoint(None))
    store.value("site")["theme"] = "changed by a caller"
    assert store.value("site") == {"theme": "dark"}


def test_entries_are_single_bytes_objects_the_garbage_collector_never_walks() -> None:
    store = MemoryStore()
    puts = [(f"k{i}", packed(b"v" * 100, i % 3, i, 1_796_000_000_000)) for i in range(1000)]
    store.apply(Changes.of(puts), Checkpoint(None))
    store.apply(Changes.of([("json-object", packed(b'{"a":[1,2]}', 0, 1000, 0, JSON))]), Checkpoint(None))
    gc.collect()
    data = store._data
    assert not gc.is_tracked(data), "the dict of entries is not walked by full collections"
    assert all(type(entry) is bytes for entry in data.values())
    assert len(data["k5"]) == HEADER_SIZE + 100
