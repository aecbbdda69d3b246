"""The CloudEvents Kafka binary binding: a stored outbox row <-> (topic, key, value, headers).

Pure functions shared by the relays (encode) and the projectors (decode), so that every component
agrees on one envelope (DESIGN.md, "The envelope").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from outbox.errors import EnvelopeError

SPECVERSION = "1.0"
SPECVERSION_BYTES = SPECVERSION.encode()
CE_SPECVERSION = "ce_specversion"
CE_ID = "ce_id"
CE_TYPE = "ce_type"
CE_SOURCE = "ce_source"
CE_TIME = "ce_time"
CE_SUBJECT = "ce_subject"
CONTENT_TYPE = "content-type"
TRACEPARENT = "traceparent"
RESERVED_HEADERS = frozenset(
    {CE_SPECVERSION, CE_ID, CE_TYPE, CE_SOURCE, CE_TIME, CE_SUBJECT, CONTENT_TYPE, TRACEPARENT}
)
"""Header names the envelope owns; user headers may not use them (nor any other `ce_` name)."""

# Upper bound of Kafka's framing around one record (record batch v2): 61 bytes of batch header,
# at most 36 bytes of varints and attributes per record, at most 10 bytes of varints per header.
BATCH_OVERHEAD = 61
RECORD_OVERHEAD = 36
HEADER_OVERHEAD = 10

Headers = list[tuple[str, bytes]]
_SPECVERSION_HEADER = (CE_SPECVERSION, SPECVERSION_BYTES)


def render_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, e.g. `2026-11-26T12:50:08.123456Z` (the stored `ce_time`)."""
    if type(moment) is not datetime or moment.tzinfo is not UTC:  # else astimezone is a copy
        moment = moment.astimezone(UTC)
    # isoformat()'s digits at 40 % of its cost (it asks the tzinfo for the offset it then writes);
    # every event published, relayed or processed renders its time once. Not strftime("%Y"):
    # glibc's %Y writes year 999 as "999", which RFC 3339 forbids; "%04d" pads it.
    return _RFC3339_UTC % (
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
    )


_RFC3339_UTC = "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ"


def parse_time(text: str) -> datetime:
    """The inverse of render_time: any RFC 3339 timestamp (`Z` or an offset) as an aware datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return moment


@dataclass(frozen=True)
class StoredEvent:
    """One outbox row, with every header value already rendered as the relays must send it."""

    ce_id: str
    ce_type: str
    ce_source: str
    ce_time: str
    aggregate_type: str
    aggregate_id: str
    topic: str
    content_type: str
    payload: bytes | None
    """None: a tombstone (outbox.TOMBSTONE), a record with a null value."""
    headers: Mapping[str, str] = field(default_factory=dict)
    traceparent: str | None = None


@dataclass(frozen=True)
class KafkaRecord:
    """What a relay hands to the Kafka producer."""

    topic: str
    key: bytes
    value: bytes | None
    """None: a tombstone."""
    headers: Headers

    def size(self) -> int:
        """Upper bound of the record's size on the wire, batch framing included."""
        size = BATCH_OVERHEAD + RECORD_OVERHEAD + len(self.key) + len(self.value or b"")
        size += HEADER_OVERHEAD * len(self.headers)
        for name, value in self.headers:  # a plain loop: the relay sizes every record it sends
            # isascii() is a flag of the str (O(1)): an ASCII name's bytes are its characters.
            size += (len(name) if name.isascii() else len(name.encode())) + len(value)
        return size


def to_kafka(event: StoredEvent) -> KafkaRecord:
    """The Kafka record for a stored event. User headers follow the envelope's, sorted by name."""
    return encode(
        event.ce_id,
        event.ce_type,
        event.ce_source,
        event.ce_time,
        event.aggregate_type,
        event.aggregate_id,
        event.topic,
        event.content_type,
        event.payload,
        event.headers,
        event.traceparent,
    )


def encode(  # noqa: PLR0917 - positional: a batch row is passed as is
    ce_id: str,
    ce_type: str,
    ce_source: str,
    ce_time: str,
    aggregate_type: str,
    aggregate_id: str,
    topic: str,
    content_type: str,
    payload: bytes | None,
    headers: Mapping[str, str] | None,
    traceparent: str | None,
) -> KafkaRecord:
    """to_kafka() of the StoredEvent with these fields, in its field order, without building it:
    the polling relay calls it with a row of its batch query (~1.5 us less per event)."""
    del aggregate_type  # part of the stored event, not of the record
    record_headers: Headers = [
        _SPECVERSION_HEADER,
        (CE_ID, ce_id.encode()),
        (CE_TYPE, ce_type.encode()),
        (CE_SOURCE, ce_source.encode()),
        (CE_TIME, ce_time.encode()),
        (CE_SUBJECT, aggregate_id.encode()),
        (CONTENT_TYPE, content_type.encode()),
    ]
    if traceparent is not None:
        record_headers.append((TRACEPARENT, traceparent.encode()))
    if headers:
        record_headers.extend((name, headers[name].encode()) for name in sorted(headers))
    return KafkaRecord(topic, aggregate_id.encode(), payload, record_headers)


@dataclass(frozen=True)
class ReceivedEvent:
    """An event as a consumer sees it, decoded from a Kafka record."""

    id: UUID
    type: str
    source: str
    time: datetime
    subject: str
    content_type: str
    data: bytes
    topic: str
    key: str
    traceparent: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def id_text(self) -> str:
        """`str(self.id)`, without printing it: a decoded event keeps its `ce_id` header's text."""
        text: str | None = self.__dict__.get(_ID_TEXT)
        return str(self.id) if text is None else text

    if not TYPE_CHECKING:  # hidden from mypy: it would accept any attribute of an event

        def __getattr__(self, name: str) -> Any:
            # Called only when `name` is not in the instance's dict: for the id of an event that
            # decoded_attributes() made, kept as its checked canonical text until it is read
            # (parsing it is a third of the envelope's decoding, and most handlers never read it).
            if name == "id":
                text = self.__dict__.get(_ID_TEXT)
                if text is not None:
                    parsed = self.__dict__["id"] = UUID(text)
                    return parsed
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


_ID_TEXT = "_id_text"
# What str(UUID) writes. A ce_id in this form is a UUID whose text is itself, so it is safe to
# parse later; any other text is parsed at once, so that a malformed one fails the decoding.
_CANONICAL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_REQUIRED = (CE_ID, CE_TYPE, CE_SOURCE, CE_TIME, CE_SUBJECT)

R = TypeVar("R", bound=ReceivedEvent)


def from_kafka(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str, str | bytes | None]] | None,
    *,
    where: str | None = None,
) -> ReceivedEvent:
    """Decode a record written by either relay; raises EnvelopeError saying what is wrong with it.

    `where` names the record in messages (default: its topic), e.g. `record orders[2]@41`.
    """
    return built(ReceivedEvent, decoded_attributes(topic, key, value, headers, where=where))


def built(cls: type[R], attributes: dict[str, Any]) -> R:
    """A `cls` (ReceivedEvent or a subclass) whose attributes are `attributes`, which hold every
    field: decoded_attributes()'s and the subclass's own. Without running `__init__`, which for a
    frozen dataclass sets each field through object.__setattr__ (2.5 µs for the consumers' 14)."""
    event = object.__new__(cls)
    object.__setattr__(event, "__dict__", attributes)
    return event


def decoded_attributes(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str, str | bytes | None]] | None,
    *,
    where: str | None = None,
) -> dict[str, Any]:
    """from_kafka()'s checks, and the attributes of the ReceivedEvent it makes with built(): for a
    subclass (the consumers' event adds payload and position), which adds its own first."""
    pairs = headers if type(headers) is list else list(headers or ())
    try:
        try:  # as confluent-kafka hands them over: every value bytes
            found = {name: raw.decode() for name, raw in pairs}  # type: ignore[union-attr]
        except AttributeError:  # a value given as text, or none
            found = {name: raw.decode() if isinstance(raw, bytes) else raw or "" for name, raw in pairs}
        text_key = key.decode() if key else ""
    except UnicodeDecodeError as err:
        raise EnvelopeError(f"{_where(where, topic)} has a header or key that is not UTF-8: {err}") from err
    ce_id, ce_time = found.get(CE_ID), found.get(CE_TIME)
    subject = found.get(CE_SUBJECT)
    if not (ce_id and ce_time and subject and found.get(CE_TYPE) and found.get(CE_SOURCE)):
        missing = [name for name in _REQUIRED if not found.get(name)]
        raise EnvelopeError(f"{_where(where, topic)} is not an outboxkit event: headers {missing} missing")
    if found.get(CE_SPECVERSION) != SPECVERSION:
        raise EnvelopeError(
            f"{_where(where, topic)} has ce_specversion {found.get(CE_SPECVERSION)!r},"
            f" expected {SPECVERSION!r}"
        )
    try:
        moment = parse_time(ce_time)
        event_id = None if _CANONICAL_ID.fullmatch(ce_id) else UUID(ce_id)
    except ValueError as err:
        raise EnvelopeError(f"{_where(where, topic)} has a malformed ce_id or ce_time: {err}") from err
    attributes: dict[str, Any] = {
        "type": found[CE_TYPE],
        "source": found[CE_SOURCE],
        "time": moment,
        "subject": subject,
        "content_type": found.get(CONTENT_TYPE) or "application/json",
        "data": value or b"",
        "topic": topic,
        "key": text_key,
        "traceparent": found.get(TRACEPARENT),
        "headers": {k: v for k, v in found.items() if k not in RESERVED_HEADERS},
    }
    if event_id is None:
        attributes[_ID_TEXT] = ce_id  # parsed when read (ReceivedEvent.__getattr__)
    else:
        attributes["id"] = event_id
    return attributes


def _where(where: str | None, topic: str) -> str:
    return where or f"record on {topic!r}"
