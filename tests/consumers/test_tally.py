"""The conformance suite's judge (pure): what it counts as lost, duplicated, reordered, unexpected."""

from __future__ import annotations

from tests.consumers.workload import CLEAN, Applied, Effects, Expected, InputRecord, Version, tally


def record(partition: int, offset: int, key: str, event_id: str | None, seq: int | None) -> InputRecord:
    return InputRecord(partition, offset, key, (), b"", event_id, seq, poison=seq is None)


# Two keys on two partitions; "a1" republished at offset 3 (a second copy, not a new event); one poison.
TOPIC = Expected(
    [
        record(0, 0, "a", "a0", 0),
        record(0, 1, "a", "a1", 1),
        record(0, 2, "a", None, None),
        record(0, 3, "a", "a1", 1),
        record(0, 4, "a", "a2", 2),
        record(1, 0, "b", "b0", 0),
        record(1, 1, "b", "b1", 1),
    ]
)
STATE = {"a": Version(2, 0, 4), "b": Version(1, 1, 1)}


def applied(*event_ids: str, changed: bool = True) -> list[Applied]:
    places = {"a0": (0, 0), "a1": (0, 1), "a2": (0, 4), "b0": (1, 0), "b1": (1, 1), "x": (0, 9)}
    return [Applied(e, e[0], int(e[1:] or 0), *places[e], instance="i", changed=changed) for e in event_ids]


def test_what_the_topic_asks_for() -> None:
    assert list(TOPIC.events) == ["a0", "a1", "a2", "b0", "b1"]  # the first copy of each, no poison
    assert TOPIC.order == {"a": ["a0", "a1", "a2"], "b": ["b0", "b1"]}
    assert TOPIC.state == STATE
    assert TOPIC.ends == {0: 5, 1: 2}  # past the poison and the copy too
    assert [(r.partition, r.offset) for r in TOPIC.poison] == [(0, 2)]


def test_a_clean_run_counts_nothing_whatever_the_interleaving_of_keys() -> None:
    found = tally(TOPIC, Effects(applied("b0", "a0", "a1", "b1", "a2"), STATE))
    assert found.counts() == CLEAN
    assert str(found) == ""


def test_lost_duplicated_reordered_unexpected_and_wrong_state() -> None:
    found = tally(
        TOPIC,
        Effects(applied("a0", "a2", "a1", "a2", "b1", "x"), {"a": Version(1, 0, 1), "c": Version(0, 0, 0)}),
    )
    assert found.counts() == {"lost": 1, "duplicated": 1, "reordered": 1, "unexpected": 1, "wrong state": 3}
    assert found.lost == ["b0"]
    assert found.duplicated == {"a2": 1}
    assert found.reordered == ["a1"]  # applied after a2, a later event of its key
    assert found.unexpected == ["x"]
    assert found.wrong_state == {
        "a": (Version(2, 0, 4), Version(1, 0, 1)),
        "b": (Version(1, 1, 1), None),
        "c": (None, Version(0, 0, 0)),
    }
    assert "lost 1 (e.g. ['b0'])" in str(found)


def test_a_replay_that_changes_nothing_is_not_a_duplicate_when_only_changes_count() -> None:
    effects = Effects([*applied("a0", "a1", "a2", "b0", "b1"), *applied("a0", "b0", changed=False)], STATE)
    assert tally(TOPIC, effects).duplicated == {"a0": 1, "b0": 1}
    assert tally(TOPIC, effects, changes_only=True).counts() == CLEAN
