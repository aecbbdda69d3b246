"""Every bad input is refused at publish() time with the documented error, and leaves no row."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from outbox import (
    BytesSerializer,
    Event,
    EventTooLargeError,
    InvalidEventError,
    InvalidHeaderError,
    MigrationError,
    Outbox,
    OutboxError,
    SerializationError,
    UnsupportedTargetError,
    publish,
    publish_many,
)
from tests.outbox.conftest import count_rows, outbox_rows
from tests.outbox.models import TEST_OUTBOX, Order

EAST, WEST = timezone(timedelta(hours=1)), timezone(timedelta(hours=-1))
TRACE, SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
BAD_TRACEPARENTS = [
    ("trailing newline", f"00-{TRACE}-{SPAN}-01\n"),
    ("version ff", f"ff-{TRACE}-{SPAN}-01"),
    ("zero trace id", f"00-{'0' * 32}-{SPAN}-01"),
    ("zero parent id", f"00-{TRACE}-{'0' * 16}-01"),
    ("uppercase", f"00-{TRACE.upper()}-{SPAN}-01"),
    ("00 with 5 fields", f"00-{TRACE}-{SPAN}-01-extra"),
    ("short trace id", f"00-{TRACE[:-1]}-{SPAN}-01"),
    ("long flags", f"00-{TRACE}-{SPAN}-011"),
    ("signed flags", f"00-{TRACE}-{SPAN}-+1"),
    ("underscore", f"00-{TRACE}-{SPAN[:8]}_{SPAN[9:]}-01"),
    ("future, glued", f"01-{TRACE}-{SPAN}-01x"),
    ("not text", 42),
]


class NoOffset(tzinfo):
    """A time zone that knows no offset: Python counts datetimes in it as naive."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None


GOOD: dict[str, Any] = {
    "type": "order.placed",
    "aggregate_type": "order",
    "aggregate_id": "1",
    "payload": {"ok": True},
}

BAD_EVENTS: list[tuple[str, dict[str, Any], type[OutboxError], str]] = [
    ("empty type", {"type": ""}, InvalidEventError, "type is missing"),
    ("blank type", {"type": "  "}, InvalidEventError, "type is missing"),
    ("type not text", {"type": None}, InvalidEventError, "type is missing"),
    ("no aggregate type", {"aggregate_type": ""}, InvalidEventError, "aggregate_type is missing"),
    ("no aggregate id", {"aggregate_id": ""}, InvalidEventError, "aggregate_id is missing"),
    (
        "float aggregate id",
        {"aggregate_id": 1.5},
        InvalidEventError,
        r"aggregate_id must be a str, an int or a uuid\.UUID, got float 1\.5",
    ),
    ("bool aggregate id", {"aggregate_id": True}, InvalidEventError, "aggregate_id must be a str.*got bool"),
    ("bytes type", {"type": b"order.placed"}, InvalidEventError, "type must be a str.*got bytes"),
    ("NUL in aggregate id", {"aggregate_id": "a\x00b"}, InvalidEventError, "without NUL"),
    ("huge type", {"type": "t" * 2000}, InvalidEventError, "at most 1024"),
    ("set payload", {"payload": {"s": {1, 2}}}, SerializationError, "not JSON-serializable"),
    (
        "Decimal payload",
        {"payload": {"total": Decimal("12.50")}},
        SerializationError,
        r"Decimal.*JsonSerializer\(default=.*docs/write-side\.md",
    ),
    ("object payload", {"payload": object()}, SerializationError, "not JSON-serializable"),
    ("int key", {"payload": {1: "a"}}, SerializationError, "not JSON-serializable"),
    ("big int", {"payload": {"n": 2**70}}, SerializationError, "not JSON-serializable"),
    ("NaN", {"payload": {"x": float("nan")}}, SerializationError, "NaN"),
    ("surrogate", {"payload": {"s": "\ud800"}}, SerializationError, "not JSON-serializable"),
    ("header not a map", {"headers": [("a", "b")]}, InvalidHeaderError, "mapping"),
    ("empty header name", {"headers": {"": "v"}}, InvalidHeaderError, "header name"),
    ("space in name", {"headers": {"a b": "v"}}, InvalidHeaderError, "header name"),
    ("ce_ header", {"headers": {"ce_type": "x"}}, InvalidHeaderError, "envelope"),
    ("CE_ header", {"headers": {"CE_custom": "x"}}, InvalidHeaderError, "envelope"),
    ("content-type", {"headers": {"content-type": "x"}}, InvalidHeaderError, "envelope"),
    ("bytes value", {"headers": {"h": b"v"}}, InvalidHeaderError, "str value"),
    ("NUL value", {"headers": {"h": "a\x00"}}, InvalidHeaderError, "without NUL"),
    ("bad traceparent", {"traceparent": "00-xyz"}, InvalidHeaderError, "traceparent"),
    *[
        (f"traceparent {why}", {"traceparent": bad}, InvalidHeaderError, "traceparent")
        for why, bad in BAD_TRACEPARENTS
    ],
    ("naive time", {"occurred_at": datetime(2026, 1, 1)}, InvalidEventError, "naive"),
    ("offsetless zone", {"occurred_at": datetime(2026, 1, 1, tzinfo=NoOffset())}, InvalidEventError, "naive"),
    ("time as text", {"occurred_at": "2026-01-01T00:00:00Z"}, InvalidEventError, "occurred_at"),
    ("time None", {"occurred_at": None}, InvalidEventError, "occurred_at"),
    ("time a date", {"occurred_at": date(2026, 1, 1)}, InvalidEventError, "occurred_at"),
    ("before year 1", {"occurred_at": datetime.min.replace(tzinfo=EAST)}, InvalidEventError, "range"),
    ("after year 9999", {"occurred_at": datetime.max.replace(tzinfo=WEST)}, InvalidEventError, "range"),
    ("id not a UUID", {"id": "42"}, InvalidEventError, "id"),
    ("bad topic", {"topic": "orders/eu"}, InvalidEventError, "topic name"),
    ("empty topic", {"topic": ""}, InvalidEventError, "topic name"),
    ("topic .", {"topic": "."}, InvalidEventError, "topic name"),
    ("topic ..", {"topic": ".."}, InvalidEventError, "topic name"),
    ("topic of 250", {"topic": "t" * 250}, InvalidEventError, "topic name"),
    ("topic newline", {"topic": "orders\n"}, InvalidEventError, "topic name"),
    ("topic not text", {"topic": 7}, InvalidEventError, "topic name"),
    ("topic bytes", {"topic": b"orders"}, InvalidEventError, "topic name"),
    ("bad aggr. topic", {"aggregate_type": "an order"}, InvalidEventError, "topic name"),
    ("too large", {"payload": {"blob": "x" * 1_000_000}}, EventTooLargeError, "over the limit"),
]


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [case[1:] for case in BAD_EVENTS],
    ids=[case[0] for case in BAD_EVENTS],
)
def test_bad_event_is_refused_and_leaves_no_row(
    engine: Engine, fields: dict[str, Any], error: type[OutboxError], message: str
) -> None:
    good = Event(**GOOD)
    with Session(engine) as session, session.begin():
        session.add(Order(id=1))
        publish(session, good, outbox=TEST_OUTBOX)
        with pytest.raises(error, match=message):
            publish(session, Event(**(GOOD | fields)), outbox=TEST_OUTBOX)
        # the caller's transaction is still usable: the refusal came before any SQL
    assert [row["ce_id"] for row in outbox_rows(engine)] == [good.id]


def test_size_limit_counts_the_envelope(engine: Engine) -> None:
    outbox = Outbox(max_record_bytes=2048, notify_channel=None)
    fits = outbox.prepare(Event(**(GOOD | {"payload": {"b": "x" * 1500}})))
    headers = {f"h{i}": "v" * 40 for i in range(10)}  # same payload + ~500 bytes of headers
    with pytest.raises(EventTooLargeError, match="2048"):
        outbox.prepare(Event(**(GOOD | {"payload": {"b": "x" * 1500}, "headers": headers})))
    assert len(fits.payload) < 2048


def test_bytes_serializer_refuses_other_payloads() -> None:
    with pytest.raises(SerializationError, match="takes bytes"):
        Outbox(serializer=BytesSerializer()).prepare(Event(**GOOD))


def test_not_an_event_is_refused() -> None:
    with pytest.raises(InvalidEventError, match=r"outbox\.Event"):
        TEST_OUTBOX.prepare(GOOD)  # type: ignore[arg-type]


NOT_EVENTS: list[tuple[str, Any, str]] = [
    ("a number", 5, r"publish_many\(\) takes an iterable of outbox\.Event.*got int 5"),
    ("None", None, r"got NoneType None"),
    ("one event", Event(**GOOD), r"got a single Event: pass \[event\], or call publish\(\)"),
    ("a string", "order.placed", r"got str 'order\.placed'"),
    ("bytes", b"{}", r"got bytes"),
    ("a dict", {"e": Event(**GOOD)}, r"got dict.*list\(events\.values\(\)\)"),
    ("a non-event inside", [Event(**GOOD), GOOD], r"item 1 of the events is dict \{.type.: .order.*, not an"),
    ("a number inside", (7,), r"item 0 of the events is int 7, not"),
]


@pytest.mark.parametrize(
    ("events", "message"), [case[1:] for case in NOT_EVENTS], ids=[case[0] for case in NOT_EVENTS]
)
def test_publish_many_refuses_what_is_not_events_before_any_sql(
    engine: Engine, events: Any, message: str
) -> None:
    good = Event(**GOOD)
    with Session(engine) as session, session.begin():
        publish(session, good, outbox=TEST_OUTBOX)
        with pytest.raises(InvalidEventError, match=message):
            publish_many(session, events, outbox=TEST_OUTBOX)
        publish(session, Event(**GOOD), outbox=TEST_OUTBOX)  # the transaction is still usable
    assert len(outbox_rows(engine)) == 2


def test_publish_of_a_list_says_to_use_publish_many() -> None:
    with pytest.raises(InvalidEventError, match=r"got list.*publish_many\(\)"):
        publish(object(), [Event(**GOOD)], outbox=TEST_OUTBOX)  # type: ignore[call-overload]


def test_not_a_session_is_refused() -> None:
    with pytest.raises(UnsupportedTargetError, match="Session"):
        publish(object(), Event(**GOOD), outbox=TEST_OUTBOX)  # type: ignore[call-overload]


def test_missing_table_says_to_run_the_migrations(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS empty_schema"))
        conn.execute(text("SET LOCAL search_path TO empty_schema"))
        with pytest.raises(MigrationError, match="outbox migrate upgrade"):
            publish(conn, Event(**GOOD), outbox=TEST_OUTBOX)
        conn.rollback()
    assert count_rows(engine, "outbox_events") == 0


class Raising:
    content_type = "application/x-custom"

    def serialize(self, payload: Any) -> bytes:
        raise RuntimeError("codec exploded")


class ReturningText:
    content_type = "application/x-custom"

    def serialize(self, payload: Any) -> bytes:
        return "text"  # type: ignore[return-value]


class NoContentType:
    content_type = None

    def serialize(self, payload: Any) -> bytes:
        return b"{}"


class WithContentType:
    def __init__(self, content_type: str) -> None:
        self.content_type = content_type

    def serialize(self, payload: Any) -> bytes:
        return b"{}"


@pytest.mark.parametrize(
    ("serializer", "message"),
    [
        (Raising(), r"serializer Raising raised RuntimeError: codec exploded"),
        (ReturningText(), r"serializer ReturningText returned str, not bytes"),
        (NoContentType(), r"serializer NoContentType has content_type None"),
        # The header goes on to consumers and to bridges that turn it into an HTTP header:
        # a line break there would let a payload's author add headers of their own.
        (
            WithContentType("application/json\r\nX-Injected: yes"),
            r"content_type 'application/json\\r\\nX-Injected: yes'.*control character",
        ),
        (BytesSerializer("text/plain\n"), r"serializer BytesSerializer has content_type 'text/plain\\n'"),
        (WithContentType("application/json;\tcharset=utf-8"), r"control character"),
        (WithContentType("application/\x00json"), r"control character"),
        (WithContentType("application/json\x7f"), r"control character"),
    ],
    ids=["raises", "returns text", "no content type", "CR LF", "LF", "tab", "NUL", "DEL"],
)
def test_a_broken_serializer_is_refused_and_leaves_no_row(
    engine: Engine, serializer: Any, message: str
) -> None:
    good = Event(**GOOD)
    with Session(engine) as session, session.begin():
        publish(session, good, outbox=TEST_OUTBOX)
        with pytest.raises(SerializationError, match=message):
            publish(session, Event(**GOOD), outbox=Outbox(serializer=serializer, notify_channel=None))
    assert [row["ce_id"] for row in outbox_rows(engine)] == [good.id]


@pytest.mark.parametrize(
    "traceparent",
    [
        f"00-{TRACE}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-00",
        f"01-{TRACE}-{SPAN}-01",  # a later version: its first four fields are read (W3C)
        f"cc-{TRACE}-{SPAN}-09-what-comes-later",
    ],
)
def test_a_w3c_traceparent_is_stored_as_given(engine: Engine, traceparent: str) -> None:
    with Session(engine) as session, session.begin():
        publish(session, Event(**(GOOD | {"traceparent": traceparent})), outbox=TEST_OUTBOX)
    assert [row["traceparent"] for row in outbox_rows(engine)] == [traceparent]
