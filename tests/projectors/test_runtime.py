"""The runtime against real PostgreSQL and Kafka: applies, fences, refuses a log that is gone.
(Redelivery, replay, kill -9, rebalances, aborted transactions and poison: tests/consumers/.)"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic
from sqlalchemy import Engine, text

from outboxkit.examples.sites.events import SitesHistory, emit
from outboxkit.examples.sites.projection import build_projector
from outboxkit.examples.sites.read_model import all_summaries
from projectors import OffsetBeyondLogEndError
from projectors.apply import FencedError
from projectors.rebuild import rebuild
from projectors.runtime import ProjectorRunner
from projectors.status import projector_status
from tests.projectors.conftest import SitesTopic, project, running, stored_total, wait_until
from tests.services import kafka_admin
from tests.stack.test_kafka import consume_all


def test_projects_site_events_into_the_read_model(
    sites_db: Engine, bootstrap_servers: str, sites_topic: SitesTopic, unique: Callable[[str], str]
) -> None:
    topic, history = sites_topic("sites", partitions=3, events=600, sites=40, seed=1)
    projector = build_projector(topic, name=unique("sites"))
    with running(projector, sites_db, bootstrap_servers) as run:
        wait_until(lambda: stored_total(sites_db, projector.name) == 600, what="600 records applied")
        registry = run.runner.metrics.registry
        assert (
            registry.get_sample_value(
                "outbox_projector_events_applied_total", {"projector": projector.name, "topic": topic}
            )
            == 600
        )
        assert registry.get_sample_value(
            "outbox_projector_batch_seconds_count", {"projector": projector.name}
        )
        lags = [
            registry.get_sample_value(
                "outbox_projector_lag", {"projector": projector.name, "topic": topic, "partition": str(p)}
            )
            for p in range(3)
        ]
        assert lags == [0, 0, 0]
    with sites_db.connect() as conn:
        assert all_summaries(conn) == history.expected


def snapshot(engine: Engine) -> list[tuple[object, ...]]:
    """Every row and column of the read model, versions included."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT * FROM site_summary ORDER BY site_id"))]


def test_offsets_moved_under_a_running_projector_fence_it_and_it_follows(
    sites_db: Engine, bootstrap_servers: str, sites_topic: SitesTopic, unique: Callable[[str], str]
) -> None:
    topic, history = sites_topic("sites-fence", partitions=2, events=400, sites=30, seed=4)
    projector = build_projector(topic, name=unique("fence"))
    with running(projector, sites_db, bootstrap_servers) as run:
        wait_until(lambda: stored_total(sites_db, projector.name) == 400, what="first pass")
        positions = run.runner.positions
        # What a rebuild's swap or another instance does: the stored offset of partition 0 moves back.
        with sites_db.begin() as conn:
            conn.execute(
                text("UPDATE projector_offsets SET next_offset = 0 WHERE projector = :p AND partition = 0"),
                {"p": projector.name},
            )
            conn.execute(
                text("DELETE FROM projector_applied_events WHERE projector = :p"), {"p": projector.name}
            )
        emit(bootstrap_servers, topic, history.generate(200, sites=30))
        wait_until(lambda: stored_total(sites_db, projector.name) == 600, what="all records after the fence")
        assert run.runner.positions != positions
    with sites_db.connect() as conn:
        assert all_summaries(conn) == history.expected


def test_an_instance_with_stale_offsets_applies_nothing(
    sites_db: Engine, bootstrap_servers: str, sites_topic: SitesTopic, unique: Callable[[str], str]
) -> None:
    topic, _ = sites_topic("sites-zombie", events=50, sites=5, seed=6)
    projector = build_projector(topic, name=unique("zombie"))
    project(projector, sites_db, bootstrap_servers, 50)
    # A paused instance wakes up with a batch from offset 10 it still believes it owns.
    records = consume_all(bootstrap_servers, topic, 50)[10:20]
    zombie = ProjectorRunner(projector, sites_db, bootstrap_servers)
    before = snapshot(sites_db)
    with pytest.raises(FencedError):
        zombie.applier.apply(records, {(topic, 0): 10})
    assert snapshot(sites_db) == before
    assert stored_total(sites_db, projector.name) == 50


def recreate_topic(bootstrap_servers: str, topic: str, timeout: float = 60) -> None:
    """Delete `topic` and create it again with one partition (deletion completes asynchronously)."""
    admin = kafka_admin(bootstrap_servers)
    admin.delete_topics([topic])[topic].result(timeout=30)
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
            return
        except KafkaException:  # still marked for deletion
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_stored_offset_beyond_the_log_end_is_refused_not_skipped(
    sites_db: Engine, bootstrap_servers: str, sites_topic: SitesTopic, unique: Callable[[str], str]
) -> None:
    topic, _ = sites_topic("sites-recreated", events=50, sites=5, seed=7)
    projector = build_projector(topic, name=unique("recreated"))
    project(projector, sites_db, bootstrap_servers, 50)

    recreate_topic(bootstrap_servers, topic)
    history = SitesHistory(seed=8)
    emit(bootstrap_servers, topic, history.generate(5, sites=5))  # offsets 0-4; the projector stored 50

    with (
        pytest.raises(OffsetBeyondLogEndError) as refused,
        running(projector, sites_db, bootstrap_servers) as run,
    ):
        wait_until(lambda: not run.thread.is_alive(), timeout=30, what="the projector to refuse")
    message = str(refused.value)
    assert f"topic {topic!r} partition 0" in message
    assert "stored next offset 50" in message and "ends at offset 5" in message
    assert "outbox projector rebuild" in message
    assert stored_total(sites_db, projector.name) == 50, "nothing applied, no offset moved"
    [status] = projector_status(projector, sites_db, bootstrap_servers)
    assert (status.next_offset, status.high, status.beyond_log_end) == (50, 5, True)

    # What the error says to do: rebuild from the topic as it is now; the projector then goes on.
    assert rebuild(projector, sites_db, bootstrap_servers, idle_timeout=1.0) == 5
    project(projector, sites_db, bootstrap_servers, 5)
    with sites_db.connect() as conn:
        assert all_summaries(conn) == history.expected
