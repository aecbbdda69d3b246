"""When a checkpoint is trusted (pure logic), and the hot-key cache's one race."""

from __future__ import annotations

import pytest

from outboxkit.kv.checkpoint import distrust, retention_of
from outboxkit.kv.stores.base import Checkpoint, Versioned
from outboxkit.kv.stores.cache import HotKeys

BOUNDS = {0: (0, 100), 1: (10, 50)}
DAY_MS = 86_400_000


def check(checkpoint: Checkpoint, now: float = 1_000.0, topic_id: str = "id-1") -> str | None:
    return distrust(checkpoint, topic_id=topic_id, bounds=BOUNDS, delete_retention_ms=DAY_MS, now=now)


def test_a_checkpoint_inside_the_log_and_young_enough_is_trusted() -> None:
    assert check(Checkpoint("id-1", {0: 100, 1: 10}, saved_at=990.0)) is None
    assert check(Checkpoint("id-1", {0: 0}, saved_at=990.0)) is None, (
        "a new partition starts at its log start"
    )


@pytest.mark.parametrize(
    ("checkpoint", "topic_id", "reason"),
    [
        (Checkpoint("id-0", {0: 5}, 990.0), "id-1", "deleted and made again"),
        (Checkpoint("id-1", {0: 101}, 990.0), "id-1", "beyond the log's end 100"),
        (Checkpoint("id-1", {1: 9}, 990.0), "id-1", "below the log's start 10"),
        (Checkpoint("id-1", {2: 0}, 990.0), "id-1", "partition 2 of the checkpoint no longer exists"),
        (Checkpoint("id-1", {0: 5}, 1_000.0 - 86_401), "id-1", "older than the topic's delete.retention.ms"),
    ],
)
def test_a_checkpoint_that_cannot_be_trusted_is_named_with_its_reason(
    checkpoint: Checkpoint, topic_id: str, reason: str
) -> None:
    found = check(checkpoint, topic_id=topic_id)
    assert found is not None and reason in found


def test_the_retention_setting_is_read_from_the_topic() -> None:
    assert retention_of({"delete.retention.ms": "1000"}) == 1000
    assert retention_of({}) == DAY_MS


def test_a_read_from_before_a_write_does_not_enter_the_cache() -> None:
    cache = HotKeys(2)
    old = Versioned("old", 0, 1, 0)
    found, generation = cache.get("k")  # a reader misses and goes to disk...
    assert found is None
    cache.written(["k"])  # ...the writer replaces k on disk meanwhile...
    cache.put("k", old, generation)  # ...and the reader's old value arrives late
    assert cache.get("k")[0] is None, "the stale value was refused"
    _, generation = cache.get("k")
    cache.put("k", Versioned("new", 0, 2, 0), generation)
    assert cache.get("k")[0] == Versioned("new", 0, 2, 0)


def test_the_least_recently_read_key_leaves_first() -> None:
    cache = HotKeys(2)
    for key in ("a", "b"):
        cache.put(key, Versioned(key, 0, 0, 0), cache.get(key)[1])
    cache.get("a")
    cache.put("c", Versioned("c", 0, 0, 0), cache.get("c")[1])
    assert [cache.get(k)[0] is not None for k in ("a", "b", "c")] == [True, False, True]
