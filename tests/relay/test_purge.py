"""Purge under retention=keep: a backlog of expired rows larger than a chunk is purged at once,
in short statements, while the relay goes on publishing."""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from relay.purge import PurgeSchedule
from tests.relay.conftest import RelayProcess, wait_for
from tests.relay.events import engine_for, outbox_for, write_numbered
from tests.services import consume_all

EXPIRED = 3000
CHUNK = 200


def test_purge_goes_on_while_full_chunks_come_back(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    with psycopg.connect(clean_outbox, autocommit=True) as conn:  # published 30 days ago
        conn.execute(
            "INSERT INTO outbox_events (ce_id, ce_type, ce_source, ce_time, aggregate_type, aggregate_id,"
            " topic, content_type, payload, published_at) SELECT gen_random_uuid(), 't', 's', 'x', 'a',"
            " 'a' || i, 't', 'application/json', '{}'::bytea, now() - interval '30 days'"
            " FROM generate_series(1, %s) AS i",
            (EXPIRED,),
        )
    topic = new_topic("purge")
    fresh = write_numbered(engine_for(clean_outbox), outbox_for(topic), ["a", "b"], 5)
    relay = relay_factory(
        env_extra={"OUTBOX_RETENTION": "keep", "OUTBOX_RETENTION_DAYS": "7"},
        purge_chunk=CHUNK,
        purge_interval=3600,  # one purge per interval would take 15 hours for this backlog
    )
    assert len(consume_all(bootstrap_servers, topic, fresh, timeout=30)) == fresh

    def counts() -> tuple[int, int]:
        with psycopg.connect(clean_outbox) as conn:
            row = conn.execute("SELECT count(*), count(published_at) FROM outbox_events").fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    wait_for(lambda: counts() == (fresh, fresh), 30, f"{EXPIRED} expired rows purged, the fresh ones kept")
    assert relay.terminate() == 0


def test_a_full_chunk_makes_the_next_one_due_at_once() -> None:
    schedule = PurgeSchedule(interval=60.0, chunk=100)
    assert schedule.due(0.0)
    assert schedule.purged(10.0, 100) is True and schedule.due(10.0)
    assert schedule.purged(10.5, 37) is False
    assert not schedule.due(70.0) and schedule.due(70.5)
