"""publish() / publish_many() with sync Session and Connection: atomic with the caller's transaction."""

from __future__ import annotations

import pickle
import select
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
import pydantic
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from outbox import TOMBSTONE, BytesSerializer, Event, Outbox, TopicRouter, publish, publish_many
from outbox.envelope import StoredEvent, to_kafka
from tests.outbox.conftest import count_rows, outbox_rows
from tests.outbox.models import TEST_OUTBOX, Order


def placed(order_id: int, **extra: Any) -> Event:
    """An order.placed event; keyword arguments override its fields."""
    fields: dict[str, Any] = {
        "type": "order.placed",
        "aggregate_type": "order",
        "aggregate_id": str(order_id),
        "payload": {"order_id": order_id, "total_cents": 1250},
    }
    return Event(**(fields | extra))


def test_commit_writes_the_domain_row_and_the_event(engine: Engine) -> None:
    event = placed(1, headers={"tenant": "acme"})
    with Session(engine) as session, session.begin():
        session.add(Order(id=1, status="placed"))
        publish(session, event, outbox=TEST_OUTBOX)

    assert count_rows(engine, "orders") == 1
    [row] = outbox_rows(engine)
    assert row["ce_id"] == event.id
    assert row["ce_type"] == "order.placed"
    assert row["ce_source"] == "tests"
    assert row["aggregate_type"] == "order"
    assert row["aggregate_id"] == "1"
    assert row["topic"] == "order"
    assert row["content_type"] == "application/json"
    assert bytes(row["payload"]) == b'{"order_id":1,"total_cents":1250}'
    assert row["headers"] == {"tenant": "acme"}
    assert row["ce_time"] == event.occurred_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert row["published_at"] is None


def test_rollback_writes_neither(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(Order(id=2))
        publish(session, placed(2), outbox=TEST_OUTBOX)
        session.flush()
        session.rollback()
    assert count_rows(engine, "orders") == 0
    assert outbox_rows(engine) == []


def test_publish_never_commits(engine: Engine) -> None:
    with Session(engine) as session:
        publish(session, placed(3), outbox=TEST_OUTBOX)
        assert session.in_transaction()
        assert outbox_rows(engine) == []  # not visible to another connection: not committed
        session.commit()
    assert len(outbox_rows(engine)) == 1


def test_savepoint_rollback_drops_only_its_events(engine: Engine) -> None:
    kept, dropped = placed(4), placed(5)
    with Session(engine) as session, session.begin():
        publish(session, kept, outbox=TEST_OUTBOX)
        nested = session.begin_nested()
        session.add(Order(id=5))
        publish(session, dropped, outbox=TEST_OUTBOX)
        nested.rollback()
    assert [row["ce_id"] for row in outbox_rows(engine)] == [kept.id]
    assert count_rows(engine, "orders") == 0


def test_connection_commit_and_rollback(engine: Engine) -> None:
    committed, rolled_back = placed(6), placed(7)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO orders (id, status) VALUES (6, 'new')"))
        publish(conn, committed, outbox=TEST_OUTBOX)
    with engine.connect() as conn:
        publish(conn, rolled_back, outbox=TEST_OUTBOX)
        conn.rollback()
    assert [row["ce_id"] for row in outbox_rows(engine)] == [committed.id]
    assert count_rows(engine, "orders") == 1


def test_many_events_in_one_transaction_keep_their_order(engine: Engine) -> None:
    # interleaved aggregates: order must follow the list, not the aggregates
    events = [placed(i % 7, payload={"n": i}) for i in range(500)]
    with engine.begin() as conn:
        publish_many(conn, events[:200], outbox=TEST_OUTBOX)
        for event in events[200:300]:
            publish(conn, event, outbox=TEST_OUTBOX)
        publish_many(conn, events[300:], outbox=TEST_OUTBOX)
    rows = outbox_rows(engine)
    assert [row["ce_id"] for row in rows] == [event.id for event in events]
    assert [orjson.loads(row["payload"])["n"] for row in rows] == list(range(500))


def test_publish_many_of_nothing_writes_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        publish_many(conn, [], outbox=TEST_OUTBOX)
    assert outbox_rows(engine) == []


def test_topic_template_and_per_event_override(engine: Engine) -> None:
    outbox = Outbox(source="shop", router=TopicRouter("shop.{aggregate_type}.v1"), notify_channel=None)
    routed, overridden = placed(8), placed(9, topic="orders-priority")
    with engine.begin() as conn:
        publish_many(conn, [routed, overridden], outbox=outbox)
    assert [row["topic"] for row in outbox_rows(engine)] == ["shop.order.v1", "orders-priority"]


@dataclass
class Shipped:
    order_id: int
    carrier: str


class Refunded(pydantic.BaseModel):
    order_id: int
    amount: float


def test_dataclass_and_pydantic_payloads(engine: Engine) -> None:
    with engine.begin() as conn:
        publish(conn, placed(10, payload=Shipped(10, "dhl")), outbox=TEST_OUTBOX)
        publish(conn, placed(10, payload=Refunded(order_id=10, amount=12.5)), outbox=TEST_OUTBOX)
    payloads = [orjson.loads(row["payload"]) for row in outbox_rows(engine)]
    assert payloads == [{"order_id": 10, "carrier": "dhl"}, {"order_id": 10, "amount": 12.5}]


def test_bytes_serializer_stores_bytes_exactly_with_its_content_type(engine: Engine) -> None:
    outbox = Outbox(serializer=BytesSerializer("application/x-protobuf"), notify_channel=None)
    value = bytes(range(256)) * 4
    with engine.begin() as conn:
        publish(conn, placed(11, payload=value), outbox=outbox)
    [row] = outbox_rows(engine)
    assert bytes(row["payload"]) == value
    assert row["content_type"] == "application/x-protobuf"


def test_a_tombstone_is_stored_without_payload_and_encodes_to_a_null_value(engine: Engine) -> None:
    """outbox.TOMBSTONE: a delete on a compacted topic; the row's payload is NULL (migration 0004),
    the record's value None, its headers the usual envelope, in both plain and many-event writes."""
    with engine.begin() as conn:
        publish(conn, placed(13, payload=TOMBSTONE), outbox=TEST_OUTBOX)
        publish_many(conn, [placed(14), placed(14, payload=TOMBSTONE)], outbox=TEST_OUTBOX)
    rows = outbox_rows(engine)
    assert [row["payload"] is None for row in rows] == [True, False, True]
    assert rows[0]["content_type"] == "application/json"
    record = to_kafka(TEST_OUTBOX.prepare(placed(13, payload=TOMBSTONE)))
    assert record.value is None and record.key == b"13"
    assert [name for name, _ in record.headers][:3] == ["ce_specversion", "ce_id", "ce_type"]
    assert repr(TOMBSTONE) == "TOMBSTONE" and pickle.loads(pickle.dumps(TOMBSTONE)) is TOMBSTONE


def test_traceparent_is_captured_from_the_current_span(engine: Engine) -> None:
    tracer = TracerProvider().get_tracer("tests")
    carrier: dict[str, str] = {}
    with tracer.start_as_current_span("place order"):
        event = placed(12)
        TraceContextTextMapPropagator().inject(carrier)  # OpenTelemetry's own rendering
    assert placed(13).traceparent is None  # no span: no trace context
    with engine.begin() as conn:
        publish(conn, event, outbox=TEST_OUTBOX)
    [row] = outbox_rows(engine)
    assert row["traceparent"] == carrier["traceparent"]


def test_stored_row_renders_the_envelope(engine: Engine) -> None:
    event = placed(14, headers={"tenant": "acme"})
    with engine.begin() as conn:
        publish(conn, event, outbox=TEST_OUTBOX)
    [row] = outbox_rows(engine)
    stored = StoredEvent(
        ce_id=str(row["ce_id"]),
        **{k: row[k] for k in ("ce_type", "ce_source", "ce_time", "aggregate_type", "aggregate_id")},
        topic=row["topic"],
        content_type=row["content_type"],
        payload=bytes(row["payload"]),
        headers=row["headers"],
        traceparent=row["traceparent"],
    )
    assert stored == TEST_OUTBOX.prepare(event)
    record = to_kafka(stored)
    assert record.key == b"14"
    assert dict(record.headers)["ce_id"] == str(event.id).encode()


def _notified(conn: psycopg.Connection[object], timeout: float = 2.0) -> list[str]:
    select.select([conn.fileno()], [], [], timeout)
    return [n.channel for n in conn.notifies(timeout=0.1, stop_after=10)]


@pytest.mark.parametrize("channel", ["outbox_events", None])
def test_notify_is_sent_at_commit_only_when_switched_on(
    engine: Engine, outbox_url: str, channel: str | None
) -> None:
    listener = psycopg.connect(outbox_url, autocommit=True)
    listen_to = f"outbox_test_{uuid.uuid4().hex[:8]}"
    listener.execute(f"LISTEN {listen_to}")
    outbox = Outbox(notify_channel=listen_to if channel else None)
    try:
        with engine.begin() as conn:
            publish(conn, placed(15), outbox=outbox)
        got = _notified(listener, timeout=1.0 if channel is None else 5.0)
    finally:
        listener.close()
    assert got == ([listen_to] if channel else [])
