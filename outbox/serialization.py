"""Turning a payload into the Kafka value bytes. JSON (orjson) by default; bring your own."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Any, Protocol, runtime_checkable

import orjson

from outbox.errors import SerializationError


@runtime_checkable
class Serializer(Protocol):
    """Turns payloads into bytes. Must be pure and thread-safe; raise SerializationError to refuse."""

    content_type: str
    """MIME type of the bytes, sent as the Kafka `content-type` header."""

    def serialize(self, payload: Any) -> bytes:
        """The payload as the exact bytes that go to Kafka."""
        ...


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(v) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        return any(_has_non_finite(getattr(value, f.name)) for f in fields(value))
    return False


class JsonSerializer:
    """JSON by orjson: dicts, lists, dataclasses, pydantic models, datetimes, UUIDs, enums.

    `default`: orjson's hook for other types: called with a value orjson cannot write, it returns
    one it can (or raises TypeError to refuse it), e.g. a Decimal as its exact text (the recipe in
    docs/write-side.md, "Money and other types JSON lacks")."""

    content_type = "application/json"

    def __init__(self, default: Callable[[Any], Any] | None = None) -> None:
        self.default = default

    def serialize(self, payload: Any) -> bytes:
        """Compact UTF-8 JSON; refuses what JSON cannot carry exactly (NaN, big ints, bad keys)."""
        # A dict first: hasattr() of a missing attribute raises and catches an AttributeError.
        if type(payload) is not dict and hasattr(payload, "model_dump") and callable(payload.model_dump):
            payload = payload.model_dump(mode="json")  # a pydantic model
        try:
            data = orjson.dumps(payload, default=self.default)
        except TypeError as err:  # orjson.JSONEncodeError is a TypeError
            raise SerializationError(
                f"payload of type {type(payload).__name__} is not JSON-serializable: {err}. "
                "Use dicts with str keys, lists, str, int (64-bit), float, bool, None, "
                "dataclasses or pydantic models, or configure another serializer"
                f"{DECIMAL_HINT if 'Decimal' in str(err) else ''}"
            ) from err
        # orjson writes NaN and infinities as null, which would not round-trip: refuse them.
        if b"null" in data and _has_non_finite(payload):
            raise SerializationError(
                "payload contains NaN or an infinity, which JSON cannot represent; "
                "send null or a string instead"
            )
        return data


DECIMAL_HINT = (
    ". For Decimal (money): JSON has no exact decimal type; send it as text with"
    " Outbox(serializer=JsonSerializer(default=...)), a hook that returns str(value) for a Decimal"
    " (the recipe is in docs/write-side.md, 'Money and other types JSON lacks')"
)


class BytesSerializer:
    """Payloads that are already bytes (Avro, Protobuf, ...), passed through unchanged."""

    def __init__(self, content_type: str = "application/octet-stream") -> None:
        self.content_type = content_type

    def serialize(self, payload: Any) -> bytes:
        """The payload itself; refuses anything but bytes-like objects."""
        if isinstance(payload, bytes | bytearray | memoryview):
            return bytes(payload)
        raise SerializationError(
            f"BytesSerializer takes bytes, got {type(payload).__name__}: encode the payload first"
        )


def serialized(serializer: Serializer, payload: Any) -> tuple[str, bytes]:
    """(content type, value bytes) from `serializer`, whatever it does wrong: a serializer is the
    caller's code, and publish() promises an OutboxError for bad input, never a stray exception."""
    content_type = checked_content_type(serializer)
    try:
        data = serializer.serialize(payload)
    except SerializationError:
        raise
    except Exception as err:
        raise SerializationError(
            f"serializer {type(serializer).__name__} raised {type(err).__name__}: {err}; fix the "
            "payload or the serializer (raise SerializationError there to refuse a payload)"
        ) from err
    if not isinstance(data, bytes):
        raise SerializationError(
            f"serializer {type(serializer).__name__} returned {type(data).__name__}, not bytes: "
            "its serialize() must return the exact bytes for Kafka (e.g. text.encode())"
        )
    return content_type, data


def checked_content_type(serializer: Serializer) -> str:
    """The serializer's content type, refused unless it is one line of printable ASCII."""
    content_type = getattr(serializer, "content_type", None)
    if not isinstance(content_type, str) or not content_type.strip() or not content_type.isascii():
        raise SerializationError(
            f"serializer {type(serializer).__name__} has content_type {content_type!r}: set it to the "
            "MIME type of its bytes, e.g. 'application/json'"
        )
    # It travels as the `content-type` header, and bridges turn that into an HTTP header (the
    # CloudEvents HTTP binding): a CR/LF would end it there and start headers of someone's choosing.
    # For ASCII text, isprintable() is exactly "no control character" (0x00-0x1f, 0x7f).
    if not content_type.isprintable():
        raise SerializationError(
            f"serializer {type(serializer).__name__} has content_type {content_type!r}, which holds a "
            "control character (a line break, tab, NUL, ...): a MIME type is one line of printable "
            "text, e.g. 'application/json; charset=utf-8'; remove the control characters"
        )
    return content_type
