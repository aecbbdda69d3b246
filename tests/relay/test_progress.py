"""The transactional relay's progress topic: created on first use, its partitions known before any
read or write (a loaded broker may answer metadata of a just-created topic without them)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from relay.errors import KafkaTroubleError
from relay.identity import SourceIdentity
from relay.progress import ProgressLog
from tests.services import kafka_admin

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
