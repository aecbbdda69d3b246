"""KV values on the wire: bytes as they are, anything else through the write side's serializer
(JSON by default); readers decode by the record's `content-type` header."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import orjson

from outbox.envelope import CONTENT_TYPE
from outbox.serialization import Serializer, serialized

OCTET_STREAM = "application/octet-stream"
JSON = "application/json"

RawHeaders = Mapping[str, str | bytes | None] | Iterable[tuple[str, str | bytes | None]] | None

ValueFormat = Literal["json", "bytes"]
"""What a reader makes of a value without a `content-type` header: JSON, or bytes as they are."""


class UndecodableValueError(ValueError):
    """A value is not what its content type says (e.g. not JSON)."""


def encode_value(value: Any, serializer: Serializer) -> tuple[bytes, list[tuple[str, str | bytes | None]]]:
    """(value bytes, headers): bytes go as they are (application/octet-stream), others through
    `serializer` (SerializationError on what it refuses)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), [(CONTENT_TYPE, OCTET_STREAM.encode())]
    content_type, data = serialized(serializer, value)
    return data, [(CONTENT_TYPE, content_type.encode())]


def content_type_of(headers: RawHeaders) -> str | None:
    """The `content-type` header's value, if there is one."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    for name, value in pairs:
        if name == CONTENT_TYPE:
            return value.decode(errors="replace") if isinstance(value, bytes) else value
    return None


def decode_value(data: bytes, content_type: str | None, default: ValueFormat) -> Any:
    """A JSON content type (or none, with default "json") is parsed; anything else is bytes."""
    if content_type is None:
        is_json = default == "json"
    else:
        is_json = content_type.split(";", 1)[0].strip().lower() == JSON or content_type.endswith("+json")
    if not is_json:
        return data
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise UndecodableValueError(f"the value is not JSON ({err})") from err
