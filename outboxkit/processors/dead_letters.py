"""Mode database's dead letters: the input record as an outbox event, written in the transaction
that moves the offsets past it, so that a relay publishes it if and only if that transaction
commits (DESIGN.md, "Processors").

The outbox carries a text key, text headers with names of [A-Za-z0-9._-] and an envelope of its
own, while a Kafka record may hold any bytes; so the dead letter is the record in a new envelope:

- key: the record's key when the outbox takes it as text; otherwise `dlq_key_encoding` says what
  the key is: `hex` (the key's bytes in hex: not UTF-8, a NUL, blank), `none` or `empty` (no key
  or an empty one; the key is then `<topic>[<partition>]`, so a partition's dead letters stay in
  order), or `sha256` (longer than the outbox's 1,024 characters: its SHA-256, the whole key in
  hex in `dlq_key_hex`);
- value: the record's value byte for byte (a null value stays null), with its `content-type`
  (`application/octet-stream` when it has none that the outbox takes) and its `traceparent`; a
  value that would take the dead letter over the outbox's `max_record_bytes` is left out
  (`dlq_value_omitted: <size> bytes`);
- headers: each original header under its name; one that the envelope owns (`ce_*`, and
  `content-type` or `traceparent` when they could not be kept as such) or that starts with `dlq_`
  as `dlq_<name>`; those that cannot travel as outbox text (a value that is null or not UTF-8 text,
  a name outside [A-Za-z0-9._-], a name seen before) in `dlq_headers_hex`: a JSON list of
  `[name, value in hex or null]` in the record's order. The order of headers is not kept
  (the relays send user headers sorted by name);
- the reason headers every dead letter carries (outboxkit.kafka.dead_letter.reason_headers,
  the same as mode kafka's: `dlq_reason`, `dlq_exception`, `dlq_topic`, ... `dlq_processor`);
- the envelope: `ce_type` `outboxkit.dead_letter`, `ce_source` the processor, and a `ce_id`
  derived from (processor, topic, partition, offset): the input dead-lettered again (offsets
  reset) makes the same id, which the outbox's unique `ce_id` keeps out while the first is there
  and a reader deduplicating by `ce_id` drops after.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from confluent_kafka import Message

from outbox import TOMBSTONE, Event
from outbox.envelope import CONTENT_TYPE, RESERVED_HEADERS, TRACEPARENT
from outbox.errors import InvalidEventError
from outbox.serialization import BytesSerializer, checked_content_type
from outbox.validation import MAX_TEXT, checked_headers, checked_traceparent, required_text
from outboxkit.kafka.dead_letter import reason_headers
from outboxkit.processors.lineage import NAMESPACE

DEAD_LETTER_TYPE = "outboxkit.dead_letter"
DEAD_LETTER_AGGREGATE = "dead_letter"
FALLBACK_CONTENT_TYPE = "application/octet-stream"
KEY_ENCODING = "dlq_key_encoding"
KEY_HEX = "dlq_key_hex"
HEADERS_HEX = "dlq_headers_hex"
VALUE_OMITTED = "dlq_value_omitted"


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter to write with an Outbox whose serializer is BytesSerializer(content_type)."""

    event: Event
    content_type: str

    @property
    def serializer(self) -> BytesSerializer:
        return BytesSerializer(self.content_type)

    def without_value(self) -> DeadLetter:
        """The dead letter with an empty value and `dlq_value_omitted: <size> bytes`: for an input
        so close to the record size limit that its dead letter (new envelope, reason headers)
        would exceed it. A dead letter that cannot be written would stop the partition."""
        payload = self.event.payload
        size = 0 if payload is TOMBSTONE else len(payload)
        headers = {**self.event.headers, VALUE_OMITTED: f"{size} bytes"}
        return DeadLetter(dataclasses.replace(self.event, payload=b"", headers=headers), self.content_type)


def dead_letter_id(processor: str, topic: str, partition: int, offset: int) -> uuid.UUID:
    """The same id every time this processor dead-letters the record at this place."""
    return uuid.uuid5(NAMESPACE, f"{processor}/dead-letter/{topic}/{partition}/{offset}")


def dead_letter(
    message: Message, processor: str, error: BaseException, attempts: int, topic: str
) -> DeadLetter:
    """The outbox event of `message`'s dead letter on `topic`."""
    source_topic, partition, offset = message.topic() or "", message.partition() or 0, message.offset() or 0
    headers: dict[str, str] = {}
    undecodable: list[tuple[str, str | None]] = []
    content_type: str | None = None
    traceparent: str | None = None
    found = message.headers() or []
    for name, raw in found.items() if isinstance(found, dict) else found:
        value = _text(raw)
        # The first valid content type and trace context become the envelope's (same name, same text).
        if name == CONTENT_TYPE and content_type is None and _content_type(value):
            content_type = value
            continue
        if name == TRACEPARENT and traceparent is None and _traceparent(value):
            traceparent = value
            continue
        kept = f"dlq_{name}" if _owned(name) else name
        if value is None or kept in headers or not _header_fits(kept, value):
            undecodable.append((name, None if raw is None else _bytes(raw).hex()))
        else:
            headers[kept] = value
    if undecodable:
        headers[HEADERS_HEX] = orjson.dumps(undecodable).decode()
    aggregate_id = _key(message.key(), f"{source_topic}[{partition}]", headers)
    headers.update(reason_headers(message, processor, error, attempts, "processor"))
    data = message.value()
    event = Event(
        type=DEAD_LETTER_TYPE,
        aggregate_type=DEAD_LETTER_AGGREGATE,
        aggregate_id=aggregate_id,
        payload=TOMBSTONE if data is None else data,
        headers=headers,
        id=dead_letter_id(processor, source_topic, partition, offset),
        source=processor,
        traceparent=traceparent,
        topic=topic,
    )
    return DeadLetter(event, content_type or FALLBACK_CONTENT_TYPE)


def _key(key: bytes | str | None, place: str, headers: dict[str, str]) -> str:
    if key is None or key in (b"", ""):
        headers[KEY_ENCODING] = "none" if key is None else "empty"
        return place
    raw = _bytes(key)
    text = _text(raw)
    if text is not None and len(text) <= MAX_TEXT and _storable(text):
        return text
    if len(raw) * 2 <= MAX_TEXT:
        headers[KEY_ENCODING] = "hex"
        return raw.hex()
    headers[KEY_ENCODING] = "sha256"
    headers[KEY_HEX] = raw.hex()
    return hashlib.sha256(raw).hexdigest()


def _owned(name: str) -> bool:
    """A name the envelope or the reason headers use."""
    lowered = name.lower()
    return lowered in RESERVED_HEADERS or lowered.startswith(("ce_", "dlq_"))


def _bytes(raw: str | bytes) -> bytes:
    return raw.encode() if isinstance(raw, str) else raw


def _text(raw: str | bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw if isinstance(raw, str) else raw.decode()
    except UnicodeDecodeError:
        return None


def _passes(check: Callable[[str], object], value: str | None) -> bool:
    """Whether the outbox's `check` accepts `value` (it raises InvalidEventError if not)."""
    if value is None:
        return False
    try:
        check(value)
    except InvalidEventError:  # SerializationError and InvalidHeaderError too
        return False
    return True


def _storable(text: str) -> bool:
    return _passes(lambda v: required_text("aggregate_id", v), text)


def _header_fits(name: str, value: str) -> bool:
    return _passes(lambda v: checked_headers({name: v}), value)


def _content_type(value: str | None) -> bool:
    return _passes(lambda v: checked_content_type(BytesSerializer(v)), value)


def _traceparent(value: str | None) -> bool:
    return _passes(checked_traceparent, value)
