"""Kafka records -> store changes. A record without a key, with a key that is not UTF-8, or with a
value that is not what its content type says is counted, logged and skipped: a reader never
stops on data (its position moves past it like past any other record)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from confluent_kafka import Message

from outboxkit.kv.stores.base import Change
from outboxkit.kv.values import UndecodableValueError, ValueFormat, content_type_of, decode_value, parse_json

log = logging.getLogger("outboxkit.kv")


@dataclass
class Decoded:
    """What one batch of records comes to."""

    changes: list[Change] = field(default_factory=list)
    positions: dict[int, int] = field(default_factory=dict)
    """partition -> the offset after the batch's last record on it."""
    skipped: int = 0


def decode_batch(messages: Sequence[Message], values: ValueFormat) -> Decoded:
    """The batch's changes in record order (several of one key stay: callbacks see each)."""
    out = Decoded()
    changes, positions = out.changes, out.positions
    append = changes.append
    for message in messages:
        partition = message.partition() or 0
        offset = message.offset() or 0
        positions[partition] = offset + 1
        raw_key = message.key()
        if raw_key is None:
            out.skipped += 1
            log.warning("skipped a record without a key", extra={"partition": partition, "offset": offset})
            continue
        try:
            key = raw_key.decode()
        except UnicodeDecodeError:
            out.skipped += 1
            log.warning(
                "skipped a record whose key is not UTF-8 text",
                extra={"partition": partition, "offset": offset, "key": raw_key.hex()[:64]},
            )
            continue
        data = message.value()
        if data is None:
            append((key, None))
            continue
        try:
            if values == "auto":
                value = decode_value(data, content_type_of(message.headers()))
            else:
                value = data if values == "bytes" else parse_json(data)
        except UndecodableValueError as err:
            out.skipped += 1
            log.warning(
                "skipped a record whose value cannot be decoded: %s",
                err,
                extra={"partition": partition, "offset": offset, "key": key},
            )
            continue
        append((key, (value, partition, offset, message.timestamp()[1], len(raw_key) + len(data))))
    return out
