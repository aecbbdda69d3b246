"""KVWriter: compacted topic made or refused, versions as Kafka has them, bad input refused
before anything is sent, and a second transactional writer fences the first."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from outbox.errors import SerializationError
from outboxkit.kafka import clients
from outboxkit.kafka.admin import topic_config
from outboxkit.kafka.catchup import read_to_end
from outboxkit.kafka.errors import TopicConfigError
from outboxkit.kv import TOMBSTONE, CompactionSettings, KVWriter
from outboxkit.kv.errors import InvalidKeyError, WriterFencedError


def records_of(
    bootstrap_servers: str, topic: str, partitions: int
) -> dict[tuple[int, int], tuple[bytes, bytes | None]]:
    consumer = clients.consumer(bootstrap_servers, "kv-test-reader")
    found = {}
    try:
        for records, _progress in read_to_end(
            consumer, {(topic, p): 0 for p in range(partitions)}, timeout=30
        ):
            for m in records:
                found[(m.partition(), m.offset())] = (m.key(), m.value())
    finally:
        consumer.close()
    return found


def test_makes_a_compacted_topic_with_its_settings(
    bootstrap_servers: str, kv_topic: Callable[[], str]
) -> None:
    topic = kv_topic()
    compaction = CompactionSettings(
        segment_ms=600_000, min_compaction_lag_ms=5_000, delete_retention_ms=7_200_000
    )
    KVWriter(topic, kafka=bootstrap_servers, partitions=2, compaction=compaction)
    config = topic_config(clients.admin(bootstrap_servers), topic)
    assert config["cleanup.policy"] == "compact"
    assert (config["segment.ms"], config["min.compaction.lag.ms"], config["delete.retention.ms"]) == (
        "600000",
        "5000",
        "7200000",
    )


def test_refuses_a_topic_without_compaction(bootstrap_servers: str, new_topic: Callable[..., str]) -> None:
    topic = new_topic("kv-delete", config={"cleanup.policy": "delete"})
    with pytest.raises(TopicConfigError, match=r"cleanup\.policy=delete, not compact.*--add-config"):
        KVWriter(topic, kafka=bootstrap_servers)
    mixed = new_topic("kv-mixed", config={"cleanup.policy": "compact,delete"})
    with pytest.raises(TopicConfigError, match="retention would delete"):
        KVWriter(mixed, kafka=bootstrap_servers)


def test_versions_name_the_records_on_kafka(bootstrap_servers: str, kv_topic: Callable[[], str]) -> None:
    topic = kv_topic()
    writer = KVWriter(topic, kafka=bootstrap_servers, partitions=3)
    put = writer.put("site:1", {"theme": "dark"})
    raw = writer.put("blob", b"\x00\x01")
    gone = writer.delete("site:1")
    many = writer.put_many([("a", 1), ("b", [1, 2]), ("blob", TOMBSTONE)])
    found = records_of(bootstrap_servers, topic, 3)
    assert found[put] == (b"site:1", b'{"theme":"dark"}')
    assert found[raw] == (b"blob", b"\x00\x01")
    assert found[gone] == (b"site:1", None), "a delete is a tombstone: null value"
    assert [found[v] for v in many] == [(b"a", b"1"), (b"b", b"[1,2]"), (b"blob", None)]
    assert gone[0] == put[0] and gone[1] > put[1], "one key, one partition, in order"
    assert len(found) == 6


def test_bad_input_is_refused_before_anything_is_sent(
    bootstrap_servers: str, kv_topic: Callable[[], str]
) -> None:
    topic = kv_topic()
    writer = KVWriter(topic, kafka=bootstrap_servers, partitions=1)
    for key in ("", None, 7, b"bytes"):
        with pytest.raises(InvalidKeyError, match="non-empty text"):
            writer.put(key, 1)  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="NaN"):
        writer.put_many([("fine", 1), ("bad", {"x": math.nan})])
    with pytest.raises(SerializationError, match="not JSON-serializable"):
        writer.put("obj", object())
    assert records_of(bootstrap_servers, topic, 1) == {}, "nothing of a refused batch was sent"


def test_a_second_single_writer_fences_the_first(bootstrap_servers: str, kv_topic: Callable[[], str]) -> None:
    topic = kv_topic()
    first = KVWriter(topic, kafka=bootstrap_servers, partitions=1, transactional_id=f"{topic}-owner")
    kept = first.put_many({"a": 1, "b": 2})
    second = KVWriter(topic, kafka=bootstrap_servers, partitions=1, transactional_id=f"{topic}-owner")
    with pytest.raises(WriterFencedError, match=r"another writer with the same transactional\.id"):
        first.put("a", "zombie")
    after = second.put("a", 3)
    found = records_of(bootstrap_servers, topic, 1)
    values = sorted(v for _k, v in found.values())
    assert values == [b"1", b"2", b"3"], "the fenced writer's value never became visible"
    assert found[after] == (b"a", b"3") and all(v in found for v in kept)
