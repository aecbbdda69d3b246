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

ValueFormat = Literal["auto", "json", "bytes"]
"""How a reader reads values: "auto" by each record's `content-type` header (JSON types parsed,
others bytes; no header: JSON); "json" or "bytes" for every record, without reading headers
(faster: reading a record's headers costs about as much as the rest of applying it)."""


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
    pairs = (
        headers
        if type(headers) is list
        else headers.items()
        if isinstance(headers, Mapping)
        else headers or ()
    )
    for name, value in pairs:
        if name == CONTENT_TYPE:
            return value.decode(errors="replace") if isinstance(value, bytes) else value
    return None


_JSON_TYPES: dict[str, bool] = {}
"""content type -> whether it is JSON (a reader sees few distinct ones: decided once each)."""


def is_json(content_type: str | None) -> bool:
    """Whether a value of this content type is JSON (a JSON type, or none at all)."""
    if content_type is None:
        return True
    found = _JSON_TYPES.get(content_type)
    if found is None:
        base = content_type.split(";", 1)[0].strip().lower()
        found = base == JSON or base.endswith("+json")
        if len(_JSON_TYPES) < 1000:
            _JSON_TYPES[content_type] = found
    return found


def decode_value(data: bytes, content_type: str | None) -> Any:
    """A JSON content type (or none) is parsed; anything else is bytes."""
    return parse_json(data) if is_json(content_type) else data


def parse_json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise UndecodableValueError(f"the value is not JSON ({err})") from err
