"""The consumer side of the envelope (DESIGN.md, "The envelope"): Kafka record -> `ReceivedEvent`.

The envelope itself is decoded by `outbox.envelope`, the one decoder of the toolkit; this adds what
every consumer (projectors, processors, the gateway) needs on top: where the record sits in Kafka
(its version: partition and offset) and the parsed JSON payload.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import Message

from outbox import envelope
from outbox.envelope import built, decoded_attributes
from outbox.errors import EnvelopeError
from outboxkit.kafka.errors import UndecodableRecordError

JSON = "application/json"

HeaderValue = str | bytes | None
RawHeaders = Mapping[str, HeaderValue] | Iterable[tuple[str, HeaderValue]] | None
"""Headers as confluent-kafka returns them."""


def header_pairs(headers: RawHeaders) -> list[tuple[str, bytes]]:
    """Headers as (name, bytes) pairs, in order; a missing value is empty."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    return [(k, v.encode() if isinstance(v, str) else v or b"") for k, v in pairs]


@dataclass(frozen=True, kw_only=True)
class ReceivedEvent(envelope.ReceivedEvent):
    """One event as a consumer's handler sees it: the envelope (outbox.envelope.ReceivedEvent: id,
    type, source, time, subject, content_type, data, topic, key, traceparent, user headers), the
    parsed payload, and where the record sits in Kafka."""

    payload: Any
    """`data` parsed as JSON when the content type is JSON, else None."""
    partition: int
    offset: int


def decode(
    topic: str,
    partition: int,
    offset: int,
    *,
    key: bytes | None,
    value: bytes | None,
    headers: RawHeaders,
) -> ReceivedEvent:
    """Decode one record (with outbox.envelope, the one decoder of the toolkit) and parse a JSON
    payload; raises UndecodableRecordError saying what is wrong with it."""
    pairs = headers if type(headers) is list or not isinstance(headers, Mapping) else headers.items()
    return _decoded(topic, partition, offset, key, value, pairs)


def _decoded(  # noqa: PLR0917 - positional: called for every record consumed
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    pairs: Iterable[tuple[str, HeaderValue]] | None,
) -> ReceivedEvent:
    try:
        attributes = decoded_attributes(topic, key, value, pairs)
    except EnvelopeError:
        # Decoded again to name the record in the message: formatting its place up front cost
        # every good record as much as this costs a bad one.
        where = _place(topic, partition, offset)
        try:
            decoded_attributes(topic, key, value, pairs, where=where)
        except EnvelopeError as err:
            raise UndecodableRecordError(str(err)) from err
        raise  # pragma: no cover - the same input decodes the same way
    content_type: str = attributes["content_type"]
    if content_type == JSON or content_type.split(";", 1)[0].strip() == JSON:
        try:
            attributes["payload"] = orjson.loads(attributes["data"])
        except orjson.JSONDecodeError as err:
            raise UndecodableRecordError(
                f"{_place(topic, partition, offset)} has a payload that is not JSON: {err}"
            ) from err
    else:
        attributes["payload"] = None
    attributes["partition"] = partition
    attributes["offset"] = offset
    return built(ReceivedEvent, attributes)


def _place(topic: str, partition: int, offset: int) -> str:
    return f"record {topic}[{partition}]@{offset}"


Partition = tuple[str, int]
"""(topic, partition)."""


def where(message: Message) -> Partition:
    """The record's (topic, partition)."""
    return (message.topic() or "", message.partition() or 0)


def decode_message(message: Message) -> ReceivedEvent:
    """`decode` of a record as confluent-kafka returns it."""
    headers = message.headers()  # a list (or None); typed as a dict too
    return _decoded(
        message.topic() or "",
        message.partition() or 0,
        message.offset() or 0,
        message.key(),
        message.value(),
        headers.items() if isinstance(headers, dict) else headers,
    )
