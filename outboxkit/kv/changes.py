"""Kafka records -> store changes (packed entries, `stores/entry.py`). A record without a key, with
a key that is not UTF-8, or with a value that is not what its content type says is counted, logged
and skipped: a reader never stops on data (its position moves past it like past any other record).

This loop runs once per record of a load (a million records at 1M keys): it does the least it can.
Per record it asks the message for its key, value, partition, offset and timestamp, and its headers
only when values are decoded by content type; it makes the key's text and the one entry object
(no pair of them: keys and entries go to two lists, `Changes`). Error and end-of-partition events
(no key) are handed back as they are; positions come from the consumer once per batch, not from
each record.

A batch of records that are all puts with UTF-8 keys (what a load reads) takes a faster path: the
same steps, each as one `map` over the whole batch, so the loop over records runs in C. A batch
with anything else in it (an event, a tombstone, a key that is not UTF-8, a value that is not
JSON) goes through the loop record by record, which tells each case apart.
"""

from __future__ import annotations

import logging
import operator
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import cast

import orjson
from confluent_kafka import Message

from outboxkit.kv.stores.base import Changes
from outboxkit.kv.stores.entry import BYTES, JSON, pack_header
from outboxkit.kv.values import ValueFormat, content_type_of, is_json

log = logging.getLogger("outboxkit.kv")


@dataclass
class Decoded:
    """What one batch of records comes to."""

    changes: Changes = field(default_factory=Changes)
    events: list[Message] = field(default_factory=list)
    """Error and end-of-partition events of the batch, in order."""
    skipped: int = 0


_timestamp = operator.itemgetter(1)


def decode_batch(messages: Sequence[Message], values: ValueFormat) -> Decoded:
    """The batch's changes in record order (several of one key stay: callbacks see each)."""
    return _puts(messages, values) or _one_by_one(messages, values)


def _puts(messages: Sequence[Message], values: ValueFormat) -> Decoded | None:
    """The batch decoded in C loops, or None when it holds more than puts of good records."""
    found_keys, found_data = list(map(Message.key, messages)), list(map(Message.value, messages))
    if None in found_keys or None in found_data:  # events (no key), records without a key, tombstones
        return None
    raw_keys, data = cast("list[bytes]", found_keys), cast("list[bytes]", found_data)
    try:
        keys = list(map(bytes.decode, raw_keys))
    except UnicodeDecodeError:
        return None
    forms: Iterable[int]
    if values == "auto":
        forms = [JSON if is_json(content_type_of(h)) else BYTES for h in map(Message.headers, messages)]
        checked = [value for value, form in zip(data, forms, strict=True) if form == JSON]
    else:
        forms = repeat(JSON if values == "json" else BYTES)
        checked = data if values == "json" else []
    try:
        deque(map(orjson.loads, checked), maxlen=0)  # parsed only to refuse what get() could not read
    except orjson.JSONDecodeError:
        return None
    headers = map(
        pack_header,
        map(Message.partition, messages),
        map(Message.offset, messages),
        map(_timestamp, map(Message.timestamp, messages)),
        forms,
    )
    return Decoded(Changes(keys, list(map(operator.add, headers, data))))


def _one_by_one(messages: Sequence[Message], values: ValueFormat) -> Decoded:
    out = Decoded()
    add_key, add_entry = out.changes.keys.append, out.changes.entries.append
    by_header = values == "auto"
    form = JSON if values == "json" else BYTES
    loads = orjson.loads
    for message in messages:
        raw_key = message.key()
        if raw_key is None:
            if message.error() is not None:
                out.events.append(message)
            else:
                out.skipped += 1
                log.warning("skipped a record without a key", extra=_where(message))
            continue
        try:
            key = raw_key.decode()
        except UnicodeDecodeError:
            out.skipped += 1
            log.warning(
                "skipped a record whose key is not UTF-8 text",
                extra={**_where(message), "key": raw_key.hex()[:64]},
            )
            continue
        data = message.value()
        if data is None:
            add_key(key)
            add_entry(None)
            continue
        if by_header:
            form = JSON if is_json(content_type_of(message.headers())) else BYTES
        if form == JSON:  # parsed now only to refuse what a later get() could not read
            try:
                loads(data)
            except orjson.JSONDecodeError as err:
                out.skipped += 1
                log.warning(
                    "skipped a record whose value cannot be decoded: the value is not JSON (%s)",
                    err,
                    extra={**_where(message), "key": key},
                )
                continue
        header = pack_header(message.partition() or 0, message.offset() or 0, message.timestamp()[1], form)
        add_key(key)
        add_entry(header + data)
    return out


def _where(message: Message) -> dict[str, int | None]:
    return {"partition": message.partition(), "offset": message.offset()}
