"""The insert statement (pure): parameters, lock order, NOTIFY switch."""

from __future__ import annotations

from outbox import Event, Outbox
from outbox.envelope import StoredEvent
from outbox.sql import INSERT_AND_NOTIFY_SQL, INSERT_SQL, insert_statement, lock_key


def stored(aggregate_id: str) -> StoredEvent:
    return Outbox().prepare(Event(type="t", aggregate_type="order", aggregate_id=aggregate_id, payload={}))


def test_one_statement_locks_each_aggregate_once_in_sorted_order() -> None:
    events = [stored(i) for i in ("b", "a", "b", "c")]
    query, params = insert_statement(events, None)
    assert query == INSERT_SQL
    assert params["lock_keys"] == [lock_key("order", x) for x in ("a", "b", "c")]
    assert params["aggregate_id"] == ["b", "a", "b", "c"]  # rows keep the caller's order
    assert "pg_advisory_xact_lock" in query
    assert "pg_notify" not in query


def test_notify_rides_in_the_same_statement() -> None:
    query, params = insert_statement([stored("a")], "outbox_events")
    assert query == INSERT_AND_NOTIFY_SQL
    assert params["channel"] == "outbox_events"
    assert "pg_notify(:channel, '')" in query


def test_lock_key_separates_type_and_id() -> None:
    assert lock_key("ab", "c") != lock_key("a", "bc")
