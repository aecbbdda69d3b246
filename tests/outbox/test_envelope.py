"""The envelope (pure): stored event -> Kafka record -> decoded event, as DESIGN.md specifies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outbox import EventTooLargeError, Outbox
from outbox.envelope import KafkaRecord, StoredEvent, from_kafka, parse_time, render_time, to_kafka
from outbox.errors import EnvelopeError
from outbox.event import Event

STORED = StoredEvent(
    ce_id="01935f1e-7b2c-7cc0-8a1e-000000000001",
    ce_type="order.placed",
    ce_source="shop",
    ce_time="2026-11-26T12:50:08.123456Z",
    aggregate_type="order",
    aggregate_id="ord-7",
    topic="order",
    content_type="application/json",
    payload=b'{"total":1}',
    headers={"zeta": "z", "alpha": "a"},
    traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
)


def test_to_kafka_is_the_cloudevents_binary_binding() -> None:
    record = to_kafka(STORED)
    assert record.topic == "order"
    assert record.key == b"ord-7"
    assert record.value == b'{"total":1}'
    assert record.headers == [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"01935f1e-7b2c-7cc0-8a1e-000000000001"),
        ("ce_type", b"order.placed"),
        ("ce_source", b"shop"),
        ("ce_time", b"2026-11-26T12:50:08.123456Z"),
        ("ce_subject", b"ord-7"),
        ("content-type", b"application/json"),
        ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ("alpha", b"a"),  # user headers sorted: jsonb does not keep their order
        ("zeta", b"z"),
    ]


def test_no_traceparent_no_header() -> None:
    record = to_kafka(StoredEvent(**{**STORED.__dict__, "traceparent": None, "headers": {}}))
    assert [name for name, _ in record.headers][-1] == "content-type"


def test_from_kafka_decodes_what_to_kafka_encodes() -> None:
    record = to_kafka(STORED)
    received = from_kafka(record.topic, record.key, record.value, record.headers)
    assert received.id == UUID(STORED.ce_id)
    assert received.type == "order.placed"
    assert received.source == "shop"
    assert received.time == datetime(2026, 11, 26, 12, 50, 8, 123456, tzinfo=UTC)
    assert received.subject == received.key == "ord-7"
    assert received.content_type == "application/json"
    assert received.data == b'{"total":1}'
    assert received.traceparent == STORED.traceparent
    assert received.headers == {"alpha": "a", "zeta": "z"}


def test_from_kafka_refuses_foreign_records() -> None:
    with pytest.raises(EnvelopeError, match="missing"):
        from_kafka("t", b"k", b"v", [("ce_specversion", b"1.0")])
    with pytest.raises(EnvelopeError, match="not an outboxkit event"):
        from_kafka("t", b"k", b"v", None)
    headers = [(n, v) for n, v in to_kafka(STORED).headers if n != "ce_id"] + [("ce_id", b"nope")]
    with pytest.raises(EnvelopeError, match="malformed"):
        from_kafka("t", b"k", b"v", headers)


def test_time_is_rendered_in_utc_with_microseconds() -> None:
    moment = datetime(2026, 1, 2, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2)))
    assert render_time(moment) == "2026-01-02T02:05:06.000007Z"
    assert parse_time(render_time(moment)) == moment


def test_record_size_bounds_the_wire_size() -> None:
    record = to_kafka(STORED)
    exact = len(record.key) + len(record.value) + sum(len(n) + len(v) for n, v in record.headers)
    assert exact < record.size() <= exact + 61 + 36 + 10 * len(record.headers)


def test_record_size_counts_the_bytes_of_a_header_name_not_its_characters() -> None:
    ascii_name = KafkaRecord("t", b"k", b"v", [("ab", b"1")])
    wide_name = KafkaRecord("t", b"k", b"v", [("äb", b"1")])  # 2 characters, 3 bytes
    assert wide_name.size() == ascii_name.size() + 1


def test_prepare_renders_what_the_relays_send() -> None:
    event = Event(
        type="order.placed",
        aggregate_type="order",
        aggregate_id=7,
        payload={"total": 1},
        occurred_at=datetime(2026, 11, 26, 12, 50, 8, 123456, tzinfo=UTC),
    )
    stored = Outbox(source="shop").prepare(event)
    assert stored.aggregate_id == "7"
    assert stored.ce_id == str(event.id)
    assert stored.ce_time == "2026-11-26T12:50:08.123456Z"
    assert stored.ce_source == "shop"
    assert UUID(stored.ce_id).version == 7


def test_default_limit_admits_a_kafka_sized_record_and_no_more() -> None:
    outbox = Outbox()
    base = {"type": "t", "aggregate_type": "a", "aggregate_id": "1"}
    outbox.prepare(Event(**base, payload={"b": "x" * 990_000}))
    with pytest.raises(EventTooLargeError):
        outbox.prepare(Event(**base, payload={"b": "x" * 1_000_000}))


@pytest.mark.parametrize("year", [1, 999, 1000, 2026, 9999])
def test_time_is_rfc3339_with_a_four_digit_year(year: int) -> None:
    moment = datetime(year, 3, 4, 5, 6, 7, 89, tzinfo=UTC)
    assert render_time(moment) == f"{year:04d}-03-04T05:06:07.000089Z"
    assert parse_time(render_time(moment)) == moment


ZERO = timezone(timedelta(0), "Z")
"""UTC's offset in a tzinfo that is not datetime.UTC (render_time converts it)."""


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=-11, minutes=-30)), timezone(timedelta(0), "Z")]
        ),
    )
)
def test_time_renders_as_isoformat_in_utc_writes_it(moment: datetime) -> None:
    expected = moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    assert render_time(moment) == expected
    assert parse_time(render_time(moment)) == moment
