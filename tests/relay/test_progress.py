"""The transactional relay's progress topic: created on first use, its partitions known before any
read or write (a loaded broker may answer metadata of a just-created topic without them)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator

import pytest

from relay.errors import KafkaTroubleError
from relay.identity import SourceIdentity
from relay.progress import RECORD_OVERHEAD_BYTES, ProgressLog, pack_ids, packed_size_bound, unpack_ids
from tests.relay.conftest import RelayProcess, outbox_count, wait_for
from tests.relay.events import assert_complete_in_order, engine_for, outbox_for, write_numbered
from tests.services import kafka_admin, read_all

SOURCE = SourceIdentity(system="1", database="db", table="outbox_events")


def test_a_progress_log_refuses_to_place_records_before_it_knows_the_topic() -> None:
    log = ProgressLog("127.0.0.1:1", "never-created", "g", shards=4, source=SOURCE)
    with pytest.raises(KafkaTroubleError, match="not known yet"):
        log.partition(1)  # a retried Kafka trouble, never a ZeroDivisionError that ends the daemon


@pytest.fixture
def topics(bootstrap_servers: str) -> Iterator[list[str]]:
    created: list[str] = []
    yield created
    if created:
        admin = kafka_admin(bootstrap_servers)  # held: the futures die with their client
        for future in admin.delete_topics(created).values():
            future.result(timeout=30)


def test_ensure_topic_creates_it_with_a_partition_per_shard(
    bootstrap_servers: str, topics: list[str]
) -> None:
    for round_ in range(10):
        topic = f"progress-{uuid.uuid4().hex[:8]}"
        topics.append(topic)
        log = ProgressLog(bootstrap_servers, topic, "g", shards=3, source=SOURCE)
        log.ensure_topic(timeout=30)
        assert log.partitions == 3, f"round {round_}"
        assert [log.partition(shard) for shard in range(4)] == [0, 1, 2, 0]
        assert log.last_batch(1) == []  # nothing committed yet
        again = ProgressLog(bootstrap_servers, topic, "g", shards=3, source=SOURCE)
        again.ensure_topic(timeout=30)  # a second relay of the group finds it
        assert again.partitions == 3


def test_a_large_batch_of_a_sharded_outbox_is_not_stuck_on_its_progress_record(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    """With shards > 1 a shard's ids are scattered, and the progress record of a large batch used to
    grow past message.max.bytes: every transaction was aborted and the shard never moved."""
    topic = new_topic("bigprogress", partitions=2)
    aggregates = [f"agg-{i}" for i in range(40)]
    write_numbered(engine_for(clean_outbox), outbox_for(topic), aggregates, 400, per_transaction=2000)
    relay_factory(
        mode="transactional",
        shards=2,
        batch_size=8000,
        producer='{"message.max.bytes": "20000"}',
    )
    wait_for(lambda: outbox_count(clean_outbox) == 0, 60, "the outbox to drain")
    assert_complete_in_order(read_all(bootstrap_servers, topic), aggregates, 400, exactly_once=True)


def test_packed_ids_round_trip_and_stay_small_when_scattered() -> None:
    rng = random.Random(7)
    ids = sorted(rng.sample(range(1, 10**12), 20_000))
    packed = pack_ids(ids)
    assert unpack_ids(packed) == ids
    assert len(packed) <= packed_size_bound(len(ids))
    scattered = list(range(1, 800_000, 8))  # one id in 8: a shard of 8, 100k ids
    assert len(pack_ids(scattered)) < 10_000


def test_a_records_size_does_not_depend_on_the_clock() -> None:
    """CI failed `fitting` once: the record's time, a float, was written one character shorter a
    moment later (1796181401.90719 against a longer form when measured)."""
    log = ProgressLog("127.0.0.1:1", "unused", "g", shards=4, source=SOURCE)
    ids = list(range(1, 500, 7))
    sizes = {
        len(log.record(0, ids, now=now))
        for now in (1796181401.9, 1796181401.907191, 1796181401.0, 4102444800.5)
    }
    assert len(sizes) == 1, sizes


def test_a_batch_is_cut_to_what_one_progress_record_can_name() -> None:
    log = ProgressLog("127.0.0.1:1", "unused", "g", shards=4, source=SOURCE)
    log.max_bytes = 4000
    rng = random.Random(3)
    ids = sorted(rng.sample(range(1, 10**15), 2000))  # random 50-bit gaps: incompressible
    n = log.fitting(ids)
    assert 0 < n < len(ids)
    room = log.max_bytes - RECORD_OVERHEAD_BYTES
    assert len(log.record(0, ids[:n])) <= room < len(log.record(0, ids[: n + 1]))
    assert log.fitting(ids[:10]) == 10
