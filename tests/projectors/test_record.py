"""Decoding the envelope (pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from outboxkit.examples.sites.events import envelope
from outboxkit.kafka.records import decode, header_pairs
from projectors.errors import UndecodableRecordError


def headers_of(**changes: bytes | None) -> list[tuple[str, bytes | None]]:
    _, _, headers = envelope("site.created", "site-1", {"owner": "ann", "version": 1})
    found: dict[str, bytes | None] = dict(headers)
    found.update(changes)
    return [(k, v) for k, v in found.items() if v is not None]


def test_decodes_the_envelope_and_json_payload() -> None:
    event_id = uuid.uuid4()
    headers = [
        *headers_of(ce_id=str(event_id).encode(), ce_time=b"2026-11-26T12:50:08.123456Z"),
        ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ("tenant", b"acme"),
    ]
    event = decode("sites", 2, 41, key=b"site-1", value=b'{"owner": "ann"}', headers=headers)
    assert event.id == event_id
    assert (event.type, event.source, event.subject, event.key) == (
        "site.created",
        "outboxkit.examples.sites",
        "site-1",
        "site-1",
    )
    assert event.time == datetime(2026, 11, 26, 12, 50, 8, 123456, tzinfo=UTC)
    assert (event.topic, event.partition, event.offset) == ("sites", 2, 41)
    assert event.payload == {"owner": "ann"} and event.data == b'{"owner": "ann"}'
    assert event.traceparent is not None and event.traceparent.startswith("00-0af7")
    assert event.headers == {"tenant": "acme"}


def test_other_content_types_keep_bytes_only() -> None:
    headers = headers_of(**{"content-type": b"application/avro"})
    event = decode("t", 0, 0, key=b"k", value=b"\x00\x01", headers=headers)
    assert (event.payload, event.data, event.content_type) == (None, b"\x00\x01", "application/avro")


def test_accepts_time_offsets_and_header_mappings() -> None:
    headers = dict(headers_of(ce_time=b"2026-11-26T13:50:08+01:00"))
    event = decode("t", 0, 0, key=b"k", value=b"{}", headers=headers)
    assert event.time == datetime(2026, 11, 26, 12, 50, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "value", "message"),
    [
        ({"ce_id": None}, b"{}", r"headers \['ce_id'\] missing"),
        ({"ce_type": b""}, b"{}", r"headers \['ce_type'\] missing"),
        ({"ce_specversion": b"0.3"}, b"{}", "ce_specversion '0.3'"),
        ({"ce_id": b"not-a-uuid"}, b"{}", "malformed ce_id or ce_time"),
        ({"ce_time": b"yesterday"}, b"{}", "malformed ce_id or ce_time"),
        ({"ce_time": b"2026-11-26T12:50:08"}, b"{}", "no time zone"),
        ({"ce_type": b"\xff"}, b"{}", "not UTF-8"),
        ({}, b"{nope", "not JSON"),
    ],
)
def test_refuses_records_that_are_not_events(
    changes: dict[str, bytes | None], value: bytes, message: str
) -> None:
    with pytest.raises(UndecodableRecordError, match=message):
        decode("t", 0, 7, key=b"k", value=value, headers=headers_of(**changes))


def test_refuses_no_headers_at_all() -> None:
    with pytest.raises(UndecodableRecordError, match=r"record t\[0\]@7 is not an outboxkit event"):
        decode("t", 0, 7, key=None, value=None, headers=None)


def test_header_pairs_normalise_what_confluent_kafka_returns() -> None:
    assert header_pairs([("a", b"1"), ("b", None), ("c", "x")]) == [("a", b"1"), ("b", b""), ("c", b"x")]
    assert header_pairs({"a": b"1"}) == [("a", b"1")]
    assert header_pairs(None) == []
