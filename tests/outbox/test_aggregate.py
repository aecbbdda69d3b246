"""AggregateRoot: events recorded on ORM models are written at flush, in the session's transaction."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from outbox import InvalidEventError, SerializationError
from tests.outbox.conftest import count_rows, outbox_rows
from tests.outbox.models import Customer, Order, OrderPlaced, OrderShipped


def test_recorded_events_are_written_with_the_aggregate(engine: Engine) -> None:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        order = Order(status="placed")  # id from the database's sequence, known only at flush
        session.add(order)
        event = order.record(OrderPlaced(order_id=0, total_cents=990))
        assert order.pending_events == [event]
    [row] = outbox_rows(engine)
    assert row["aggregate_type"] == "order"
    assert row["aggregate_id"] == str(order.id)
    assert row["ce_type"] == "order.placed"
    assert row["ce_id"] == event.id
    assert orjson.loads(row["payload"]) == {"order_id": 0, "total_cents": 990}
    assert order.pending_events == []


def test_rollback_drops_recorded_events(engine: Engine) -> None:
    with Session(engine) as session:
        order = Order(id=20)
        session.add(order)
        order.record(OrderPlaced(order_id=20, total_cents=1))
        session.flush()
        order.record(OrderShipped(order_id=20))  # recorded, never flushed
        session.rollback()
        assert order.pending_events == []
    assert outbox_rows(engine) == []
    assert count_rows(engine, "orders") == 0


def test_events_on_an_unchanged_loaded_aggregate_are_written(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        session.add(Order(id=21, status="placed"))
    with Session(engine) as session, session.begin():
        order = session.get(Order, 21)
        assert order is not None
        order.record(OrderShipped(order_id=21))  # no column changes
    assert [row["ce_type"] for row in outbox_rows(engine)] == ["order.shipped"]


def test_savepoint_rollback_drops_only_its_events(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        order = Order(id=22)
        session.add(order)
        order.record(OrderPlaced(order_id=22, total_cents=5))
        with session.begin_nested() as nested:
            order.record(OrderShipped(order_id=22), headers={"attempt": "1"})
            session.flush()  # written inside the savepoint
            order.record(OrderShipped(order_id=22), headers={"attempt": "2"})  # never flushed
            nested.rollback()
        order.record(OrderShipped(order_id=22), headers={"attempt": "3"})
    rows = outbox_rows(engine)
    assert [(row["ce_type"], row["headers"]) for row in rows] == [
        ("order.placed", {}),
        ("order.shipped", {"attempt": "3"}),
    ]


def test_events_of_several_aggregates_keep_the_recorded_order(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        alice, bob = Customer(id="c-alice", name="Alice"), Customer(id="c-bob", name="Bob")
        order = Order(id=23)
        session.add_all([alice, bob, order])
        order.record(OrderPlaced(order_id=23, total_cents=1))
        bob.record({"name": "Bob"}, type="customer.registered")
        alice.record({"name": "Alice"}, type="customer.registered")
        order.record(OrderShipped(order_id=23))
    rows = outbox_rows(engine)
    assert [(row["aggregate_type"], row["aggregate_id"], row["ce_type"]) for row in rows] == [
        ("order", "23", "order.placed"),
        ("customers", "c-bob", "customer.registered"),
        ("customers", "c-alice", "customer.registered"),
        ("order", "23", "order.shipped"),
    ]


def test_record_needs_an_event_type() -> None:
    with pytest.raises(InvalidEventError, match="__event_type__"):
        Order(id=24).record({"no": "type"})


def test_a_bad_recorded_event_fails_the_flush_and_writes_nothing(engine: Engine) -> None:
    with Session(engine) as session:
        order = Order(id=25)
        session.add(order)
        order.record({"bad": {1, 2}}, type="order.placed")  # a set is not JSON
        with pytest.raises(SerializationError, match="not JSON-serializable"):
            session.flush()
        session.rollback()
    assert outbox_rows(engine) == []
    assert count_rows(engine, "orders") == 0


def test_events_recorded_before_the_session_saw_the_aggregate(engine: Engine) -> None:
    dropped, kept = Order(id=26), Order(id=27)
    dropped.record(OrderPlaced(order_id=26, total_cents=1))  # not in any session yet
    kept.record(OrderPlaced(order_id=27, total_cents=2))
    with Session(engine) as session:
        session.add(dropped)
        session.rollback()
        assert dropped.pending_events == []
    with Session(engine) as session, session.begin():
        session.add(kept)
    assert [row["aggregate_id"] for row in outbox_rows(engine)] == ["27"]
