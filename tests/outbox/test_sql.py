"""The insert statement (pure): parameters, lock order, single vs many, NOTIFY switch."""

from __future__ import annotations

from outbox import Event, Outbox
from outbox.envelope import StoredEvent
from outbox.sql import SQL, insert_statement, lock_key


def stored(aggregate_id: str) -> StoredEvent:
    return Outbox().prepare(Event(type="t", aggregate_type="order", aggregate_id=aggregate_id, payload={}))


def test_many_events_lock_each_aggregate_once_in_sorted_order() -> None:
    events = [stored(i) for i in ("b", "a", "b", "c")]
    query, params = insert_statement(events, None)
    assert query == SQL[False, False]
    assert params["lock_keys"] == [lock_key("order", x) for x in ("a", "b", "c")]
    assert params["aggregate_id"] == ["b", "a", "b", "c"]  # rows keep the caller's order
    assert params["headers"] == ["{}"] * 4
    assert "pg_advisory_xact_lock" in query
    assert "pg_notify" not in query


def test_one_event_uses_scalar_parameters() -> None:
    event = stored("a")
    query, params = insert_statement([event], None)
    assert query == SQL[True, False]
    assert params["lock_key"] == lock_key("order", "a")
    assert params["payload"] == event.payload == b"{}"
    assert "pg_advisory_xact_lock(hashtextextended(:lock_key, 0))" in query


def test_notify_rides_in_the_same_statement() -> None:
    for events in ([stored("a")], [stored("a"), stored("b")]):
        query, params = insert_statement(events, "outbox_events")
        assert query == SQL[len(events) == 1, True]
        assert params["channel"] == "outbox_events"
        assert "pg_notify(:channel, '')" in query


def test_lock_key_separates_type_and_id() -> None:
    assert lock_key("ab", "c") != lock_key("a", "bc")
