"""Mode database's dead letters as outbox events, without a broker: what a relay would send for the
dead letter of a record (outboxkit.processors.dead_letters), for ordinary and for odd records."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import orjson
import pytest
from confluent_kafka import Message

from outbox import Event, Outbox
from outbox.envelope import KafkaRecord, to_kafka
from outbox.errors import EventTooLargeError
from outboxkit.processors import PermanentError
from outboxkit.processors.dead_letters import dead_letter, dead_letter_id

TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@dataclass
class Record:
    """What dead_letter reads of a confluent-kafka Message (a value object, not a broker)."""

    _key: bytes | None = b"o-1"
    _value: bytes | None = b'{"total": 3}'
    _headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    _offset: int = 41

    def topic(self) -> str:
        return "orders"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes | None]]:
        return self._headers


def sent(record: Record, processor: str = "billing") -> KafkaRecord:
    """The Kafka record a relay sends for the dead letter of `record`."""
    message: Message = record  # type: ignore[assignment]
    letter = dead_letter(message, processor, PermanentError("no such order"), 1, "orders.dlq")
    return Outbox(serializer=letter.serializer).record(letter.event)


def test_a_dead_letter_keeps_key_value_content_type_trace_and_headers_and_says_why() -> None:
    event = Event(
        type="order.placed",
        aggregate_type="order",
        aggregate_id="o-1",
        payload={"total": 3},
        headers={"tenant": "acme"},
        traceparent=TRACE,
    )
    original = to_kafka(Outbox().prepare(event))
    out = sent(Record(original.key, original.value, list(original.headers)))
    headers = dict(out.headers)
    assert (out.topic, out.key, out.value) == ("orders.dlq", b"o-1", original.value)
    assert headers["content-type"] == b"application/json"
    assert headers["traceparent"] == TRACE.encode()
    assert headers["tenant"] == b"acme"
    assert headers["dlq_ce_id"] == str(event.id).encode(), "the original envelope goes as dlq_ce_*"
    assert headers["dlq_ce_type"] == b"order.placed"
    assert headers["dlq_ce_subject"] == b"o-1"
    assert headers["ce_type"] == b"outboxkit.dead_letter"
    assert headers["ce_source"] == b"billing"
    assert headers["ce_id"] == str(dead_letter_id("billing", "orders", 2, 41)).encode()
    # The reason headers of mode kafka's dead letters (outboxkit.kafka.dead_letter.reason_headers).
    assert headers["dlq_reason"] == b"PermanentError: no such order"
    assert headers["dlq_exception"] == b"outboxkit.processors.errors.PermanentError"
    assert (headers["dlq_topic"], headers["dlq_partition"], headers["dlq_offset"]) == (b"orders", b"2", b"41")
    assert headers["dlq_processor"] == headers["dlq_consumer"] == b"billing"
    assert headers["dlq_attempts"] == b"1"
    assert b"dlq_time" in {name.encode() for name in headers}
    assert not {"dlq_key_encoding", "dlq_headers_hex"} & set(headers)


def test_the_id_is_derived_from_processor_and_place() -> None:
    ids = {dict(sent(Record(), "billing").headers)["ce_id"] for _ in range(3)}
    assert len(ids) == 1, "the same record dead-lettered again gets the same id"
    assert dict(sent(Record(_offset=42)).headers)["ce_id"] not in ids
    assert dict(sent(Record(), "shipping").headers)["ce_id"] not in ids


def test_keys_the_outbox_cannot_carry_as_text_are_encoded_and_marked() -> None:
    binary = sent(Record(_key=b"\xff\x00\x01"))
    assert (binary.key, dict(binary.headers)["dlq_key_encoding"]) == (b"ff0001", b"hex")
    none = sent(Record(_key=None))
    assert (none.key, dict(none.headers)["dlq_key_encoding"]) == (b"orders[2]", b"none")
    empty = sent(Record(_key=b""))
    assert (empty.key, dict(empty.headers)["dlq_key_encoding"]) == (b"orders[2]", b"empty")
    long_key = b"k" * 2000
    long = sent(Record(_key=long_key))
    assert long.key == hashlib.sha256(long_key).hexdigest().encode()
    assert dict(long.headers)["dlq_key_encoding"] == b"sha256"
    assert dict(long.headers)["dlq_key_hex"] == long_key.hex().encode()


def test_headers_the_outbox_cannot_carry_as_text_go_in_hex_and_dlq_names_are_moved_aside() -> None:
    odd = [
        ("blob", b"\xff\xfe"),
        ("nothing", None),
        ("with space", b"x"),
        ("twice", b"1"),
        ("twice", b"2"),
        ("dlq_reason", b"an earlier failure"),
        ("content-type", b"text/plain"),
        ("content-type", b"text/html"),
        ("traceparent", b"not trace context"),
    ]
    out = sent(Record(_value=None, _headers=odd))
    headers = dict(out.headers)
    assert out.value is None, "a null value stays null"
    assert headers["content-type"] == b"text/plain"
    assert headers["dlq_content-type"] == b"text/html"
    assert headers["dlq_traceparent"] == b"not trace context"
    assert "traceparent" not in headers
    assert headers["twice"] == b"1"
    assert headers["dlq_dlq_reason"] == b"an earlier failure"
    assert headers["dlq_reason"] == b"PermanentError: no such order"
    assert orjson.loads(headers["dlq_headers_hex"]) == [
        ["blob", "fffe"],
        ["nothing", None],
        ["with space", "78"],
        ["twice", "32"],
    ]


def test_a_record_without_content_type_is_octet_stream() -> None:
    out = sent(Record(_headers=[("ce_type", b"order.placed")]))
    assert dict(out.headers)["content-type"] == b"application/octet-stream"
    assert dict(out.headers)["dlq_ce_type"] == b"order.placed"


def test_a_value_too_large_for_the_dead_letter_is_left_out_and_its_size_said() -> None:
    message: Message = Record(_value=b"x" * 999_900)  # type: ignore[assignment]
    letter = dead_letter(message, "billing", PermanentError("no"), 1, "orders.dlq")
    with pytest.raises(EventTooLargeError):
        Outbox(serializer=letter.serializer).record(letter.event)
    smaller = letter.without_value()
    out = Outbox(serializer=smaller.serializer).record(smaller.event)
    assert (out.key, out.value) == (b"o-1", b"")
    assert dict(out.headers)["dlq_value_omitted"] == b"999900 bytes"
    assert dict(out.headers)["ce_id"] == dict(sent(Record()).headers)["ce_id"]
