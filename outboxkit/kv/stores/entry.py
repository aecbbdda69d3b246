"""The packed entry every store keeps per key: one `bytes` object, a 21-byte header (partition,
offset, timestamp, form) and then the value's bytes as they came from Kafka.

One object per key instead of a tuple of a value, three ints and a size: at a million keys of
100 B that is about 160 B per value instead of about 380 (bench/README.md, "RSS"), and a `bytes`
is never tracked by the cyclic garbage collector, whatever the value holds (a JSON object held as
bytes adds nothing to full collections). Values are decoded when read (`value_of`): a JSON value
is parsed on every `get()` and each caller gets its own copy. The reader checks that a JSON value
parses before it stores it, so a read never fails on data.

The size (key and value bytes, for the store's byte count) is not stored: it is the key's UTF-8
length plus the value's length.
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

from outboxkit.kv.stores.base import Versioned

HEADER = struct.Struct("<iqqB")
"""partition, offset, timestamp (ms since the epoch), form."""
HEADER_SIZE = HEADER.size
BYTES, JSON = 0, 1
"""The forms of a value: bytes as they are, or JSON text parsed when read."""

pack_header = HEADER.pack


def packed(data: bytes, partition: int, offset: int, timestamp: int, form: int = BYTES) -> bytes:
    """The entry of a value's bytes (`form` JSON: `data` is JSON text)."""
    return pack_header(partition, offset, timestamp, form) + data


def value_of(entry: bytes) -> Any:
    """The entry's value: its bytes, or the parsed JSON."""
    if entry[HEADER_SIZE - 1] == BYTES:
        return entry[HEADER_SIZE:]
    return orjson.loads(memoryview(entry)[HEADER_SIZE:])


def key_size(key: str) -> int:
    """Bytes of the key in UTF-8 (without encoding an ASCII key)."""
    return len(key) if key.isascii() else len(key.encode())


def size_of(key: str, entry: bytes) -> int:
    """Bytes of key and value as they came from Kafka."""
    return key_size(key) + len(entry) - HEADER_SIZE


def unpacked(key: str, entry: bytes) -> Versioned:
    """The entry as readers see it."""
    partition, offset, timestamp, _form = HEADER.unpack_from(entry)
    return Versioned(value_of(entry), partition, offset, timestamp, size_of(key, entry))


def version_of(entry: bytes) -> tuple[int, int]:
    """(partition, offset) of the entry."""
    partition, offset, _timestamp, _form = HEADER.unpack_from(entry)
    return partition, offset
