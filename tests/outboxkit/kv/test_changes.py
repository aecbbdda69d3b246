"""Records -> changes (pure, on confluent-kafka Message objects made in the test): a batch of good
puts takes the C-loop path and comes out exactly as the record-by-record loop makes it; a batch
with an event, a tombstone or a bad record goes record by record and skips only the bad one."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, Message

from outboxkit.kv.changes import _one_by_one, _puts, decode_batch
from outboxkit.kv.stores.entry import unpacked
from outboxkit.kv.values import ValueFormat

Headers = list[tuple[str, str | bytes | None]]
JSON_TYPE: Headers = [("content-type", b"application/json")]
BYTES_TYPE: Headers = [("content-type", b"application/octet-stream")]


def record(offset: int, key: bytes | None, value: bytes | None, headers: Headers) -> Message:
    return Message(
        topic="t",
        partition=offset % 2,
        offset=offset,
        key=key,
        value=value,
        headers=headers,
        timestamp=(1, 1000 + offset),
    )


def puts(values: ValueFormat) -> list[Message]:
    json_headers = JSON_TYPE if values != "bytes" else BYTES_TYPE
    return [
        record(0, b"site:1", b'{"theme":"dark"}', json_headers),
        record(1, "ü".encode(), b"\x00raw", BYTES_TYPE if values != "json" else JSON_TYPE),
        record(2, b"site:1", b'{"theme":"neon"}', json_headers),
    ]


@pytest.mark.parametrize("values", ["auto", "json", "bytes"])
def test_a_batch_of_puts_comes_out_as_the_record_by_record_loop_makes_it(values: ValueFormat) -> None:
    batch = [m for m in puts(values) if values != "json" or m.value() != b"\x00raw"]
    fast = _puts(batch, values)
    assert fast is not None, "a batch of good puts takes the C-loop path"
    slow = _one_by_one(batch, values)
    assert (fast.changes.keys, fast.changes.entries) == (slow.changes.keys, slow.changes.entries)
    assert fast.skipped == slow.skipped == 0 and fast.events == slow.events == []
    seen = [unpacked(k, e) for k, e in fast.changes if e is not None]
    if values == "bytes":
        assert seen[0].value == b'{"theme":"dark"}'
    else:
        assert seen[0].value == {"theme": "dark"} and seen[-1].value == {"theme": "neon"}
    assert (seen[0].partition, seen[0].offset, seen[0].timestamp) == (0, 0, 1000)


def test_events_tombstones_and_bad_records_go_record_by_record() -> None:
    eof = Message(topic="t", partition=1, offset=9, error=KafkaError(KafkaError._PARTITION_EOF))
    batch = [
        *puts("auto"),
        record(3, b"site:1", None, []),  # a tombstone
        record(4, b"\xff\xfe", b"1", JSON_TYPE),  # a key that is not UTF-8
        record(5, b"site:2", b"{not json", JSON_TYPE),
        eof,
    ]
    assert _puts(batch, "auto") is None
    decoded = decode_batch(batch, "auto")
    assert decoded.changes.keys == ["site:1", "ü", "site:1", "site:1"]
    assert decoded.changes.entries[-1] is None and decoded.skipped == 2 and decoded.events == [eof]
    for one in ([batch[4]], [batch[5]]):
        assert _puts(one, "auto") is None and decode_batch(one, "auto").skipped == 1
