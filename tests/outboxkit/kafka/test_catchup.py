"""The one catch-up reader on transactional topics: commit markers, aborted transactions and an
open transaction never leave it waiting, and it never returns an aborted record."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from outboxkit.kafka import clients
from outboxkit.kafka.admin import ensure_topic, partition_counts
from outboxkit.kafka.catchup import end_offsets, read_to_end
from outboxkit.kafka.errors import TopicNotFoundError


def transactional_history(bootstrap_servers: str, topic: str) -> tuple[list[bytes], object]:
    """Committed, aborted, committed, and one transaction left open: (committed values, producer)."""
    producer = clients.transactional_producer(bootstrap_servers, f"catchup-{uuid.uuid4().hex[:8]}")
    committed: list[bytes] = []
    for round_, commit in enumerate((True, False, True)):
        producer.begin_transaction()
        values = [f"{round_}-{i}".encode() for i in range(7)]
        for i, value in enumerate(values):
            producer.produce(topic, value, f"key-{i}".encode())
        producer.flush(30)
        if commit:
            producer.commit_transaction(30)
            committed += values
        else:
            producer.abort_transaction(30)
    producer.begin_transaction()  # open: beyond the last stable offset, not waited for
    producer.produce(topic, b"open", b"key-0")
    producer.flush(30)
    return committed, producer


def test_reads_every_committed_record_and_stops_at_the_markers(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic = unique("catchup")
    assert ensure_topic(clients.admin(bootstrap_servers), topic, partitions=3) == 3
    committed, producer = transactional_history(bootstrap_servers, topic)
    consumer = clients.consumer(bootstrap_servers, "catchup-reader")
    try:
        partitions = [(topic, p) for p in range(3)]
        ends = end_offsets(consumer, partitions)
        # The last offset of each partition is a commit marker that no consumer receives.
        started = time.monotonic()
        seen: list[bytes] = []
        last = None
        for records, progress in read_to_end(consumer, dict.fromkeys(partitions, 0), timeout=30):
            seen += [m.value() or b"" for m in records]
            last = progress
        elapsed = time.monotonic() - started
    finally:
        consumer.close()
        producer.abort_transaction(30)  # type: ignore[attr-defined]
    assert sorted(seen) == sorted(committed), "exactly the committed records, none aborted"
    assert last is not None and last.done and last.covered == last.total == sum(ends.values())
    assert elapsed < 20, f"caught up in {elapsed:.1f} s: it must not wait out a timeout"


def test_a_start_at_the_end_reads_nothing(bootstrap_servers: str, unique: Callable[[str], str]) -> None:
    topic = unique("catchup-end")
    ensure_topic(clients.admin(bootstrap_servers), topic, partitions=1)
    _committed, producer = transactional_history(bootstrap_servers, topic)
    consumer = clients.consumer(bootstrap_servers, "catchup-reader")
    try:
        end = end_offsets(consumer, [(topic, 0)])[(topic, 0)]
        assert list(read_to_end(consumer, {(topic, 0): end})) == []
    finally:
        consumer.close()
        producer.abort_transaction(30)  # type: ignore[attr-defined]


def test_a_topic_that_does_not_exist_is_named(bootstrap_servers: str, unique: Callable[[str], str]) -> None:
    missing = unique("missing")
    admin = clients.admin(bootstrap_servers, {"allow.auto.create.topics": "false"})
    with pytest.raises(TopicNotFoundError, match=f"topic '{missing}' is not available.*create it first"):
        partition_counts(admin, [missing], timeout=10)
