"""The consumer side of the envelope (DESIGN.md, "The envelope"): Kafka record -> `ReceivedEvent`.

Kept to this one module so that it can be unified with the producer side (`outbox.envelope`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from projectors.errors import UndecodableRecordError

SPECVERSION = "1.0"
CE_SPECVERSION = "ce_specversion"
CE_ID = "ce_id"
CE_TYPE = "ce_type"
CE_SOURCE = "ce_source"
CE_TIME = "ce_time"
CE_SUBJECT = "ce_subject"
CONTENT_TYPE = "content-type"
TRACEPARENT = "traceparent"
JSON = "application/json"
REQUIRED = (CE_ID, CE_TYPE, CE_SOURCE, CE_TIME, CE_SUBJECT)
RESERVED = frozenset((CE_SPECVERSION, *REQUIRED, CONTENT_TYPE, TRACEPARENT))

HeaderValue = str | bytes | None
RawHeaders = Mapping[str, HeaderValue] | Iterable[tuple[str, HeaderValue]] | None
"""Headers as confluent-kafka returns them."""


def header_pairs(headers: RawHeaders) -> list[tuple[str, bytes]]:
    """Headers as (name, bytes) pairs, in order; a missing value is empty."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    return [(k, v.encode() if isinstance(v, str) else v or b"") for k, v in pairs]


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """One event as a handler sees it: the envelope, the payload, and where it sits in Kafka."""

    id: UUID
    type: str
    source: str
    time: datetime
    subject: str
    content_type: str
    data: bytes
    """The payload bytes as they were on Kafka."""
    payload: Any
    """`data` parsed as JSON when the content type is JSON, else None."""
    topic: str
    partition: int
    offset: int
    key: str
    traceparent: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    """User headers (the envelope's own are fields above)."""


def parse_time(text: str) -> datetime:
    """An RFC 3339 timestamp (`Z` or an offset) as an aware datetime."""
    moment = datetime.fromisoformat(text)  # Python 3.11 reads every RFC 3339 form, `Z` included
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return moment


def decode(
    topic: str,
    partition: int,
    offset: int,
    *,
    key: bytes | None,
    value: bytes | None,
    headers: RawHeaders,
) -> ReceivedEvent:
    """Decode one record; raises UndecodableRecordError saying what is wrong with it."""
    where = f"record {topic}[{partition}]@{offset}"
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    try:
        found = {k: v.decode() if isinstance(v, bytes) else v or "" for k, v in pairs}
    except UnicodeDecodeError as err:
        raise UndecodableRecordError(f"{where} has a header that is not UTF-8: {err}") from err
    missing = [name for name in REQUIRED if not found.get(name)]
    if missing:
        raise UndecodableRecordError(f"{where} is not an outboxkit event: headers {missing} missing")
    if found.get(CE_SPECVERSION) != SPECVERSION:
        raise UndecodableRecordError(
            f"{where} has ce_specversion {found.get(CE_SPECVERSION)!r}, expected {SPECVERSION!r}"
        )
    try:
        event_id, moment = UUID(found[CE_ID]), parse_time(found[CE_TIME])
    except ValueError as err:
        raise UndecodableRecordError(f"{where} has a malformed ce_id or ce_time: {err}") from err
    content_type = found.get(CONTENT_TYPE) or JSON
    data = value or b""
    payload: Any = None
    if content_type.split(";", 1)[0].strip() == JSON:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError as err:
            raise UndecodableRecordError(f"{where} has a payload that is not JSON: {err}") from err
    try:
        text_key = (key or b"").decode()
    except UnicodeDecodeError as err:
        raise UndecodableRecordError(f"{where} has a key that is not UTF-8: {err}") from err
    return ReceivedEvent(
        id=event_id,
        type=found[CE_TYPE],
        source=found[CE_SOURCE],
        time=moment,
        subject=found[CE_SUBJECT],
        content_type=content_type,
        data=data,
        payload=payload,
        topic=topic,
        partition=partition,
        offset=offset,
        key=text_key,
        traceparent=found.get(TRACEPARENT),
        headers={k: v for k, v in found.items() if k not in RESERVED},
    )
