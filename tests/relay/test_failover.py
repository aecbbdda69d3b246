"""Leader failover after kill -9, and a zombie relay (paused, its leases lost) fenced by its
transactional.id when it wakes up."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import psycopg

from tests.relay.conftest import RelayProcess, outbox_count, wait_for
from tests.relay.events import (
    assert_complete_in_order,
    by_key,
    engine_for,
    outbox_for,
    write_numbered,
    write_round,
)
from tests.services import consume_all, read_all

AGGREGATES = [f"agg-{i}" for i in range(10)]


def test_standby_takes_over_within_seconds_of_a_kill_9(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    topic = new_topic("failover")
    engine, outbox = engine_for(clean_outbox), outbox_for(topic)
    leader = relay_factory()
    leader.wait_ready()
    write_round(engine, outbox, ["a"], 0)
    assert len(consume_all(bootstrap_servers, topic, 1, timeout=30)) == 1
    standby = relay_factory()
    standby.wait_ready()
    time.sleep(1.0)  # the standby has tried the lease and waits
    leader.kill()
    killed_at = time.monotonic()
    write_round(engine, outbox, ["a"], 1)
    wait_for(lambda: outbox_count(clean_outbox) == 0, 10, "the standby to publish")
    failover = time.monotonic() - killed_at
    assert failover < 5, f"failover took {failover:.1f}s"
    assert by_key(consume_all(bootstrap_servers, topic, 2, timeout=30)) == {"a": [0, 1]}
    assert standby.terminate() == 0


def relay_backends(url: str, group: str) -> list[int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND (application_name = 'outbox-relay-worker' OR starts_with(application_name, %s))",
            (f"outbox-relay:{group}/",),
        ).fetchall()
    return [int(r[0]) for r in rows]


def test_a_zombie_relay_is_fenced_and_publishes_no_duplicate(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    topic = new_topic("zombie", partitions=2)
    engine, outbox = engine_for(clean_outbox), outbox_for(topic)
    write_numbered(engine, outbox, AGGREGATES, 300, per_transaction=500)
    zombie = relay_factory(mode="transactional", batch_size=100)
    zombie.wait_ready()
    wait_for(lambda: outbox_count(clean_outbox) < 2900, 20, "the first relay to be publishing")
    assert zombie.proc is not None
    os.kill(zombie.proc.pid, signal.SIGSTOP)  # paused mid-stream: a GC pause, a frozen VM...
    group = zombie.env["OUTBOX_RELAY_GROUP"]
    with psycopg.connect(clean_outbox, autocommit=True) as conn:  # ... and its leases are lost
        for pid in relay_backends(clean_outbox, group):
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    successor = relay_factory(mode="transactional", batch_size=100)
    successor.wait_ready()
    time.sleep(1.0)  # the successor owns the shard and has fenced the zombie's transactional id
    os.kill(zombie.proc.pid, signal.SIGCONT)  # the zombie wakes up and carries on where it was
    wait_for(lambda: outbox_count(clean_outbox) == 0, 60, "the outbox to drain")
    assert successor.terminate() == 0
    assert zombie.alive(), "a fenced relay becomes a standby, it does not crash"

    records = read_all(bootstrap_servers, topic)
    assert_complete_in_order(records, AGGREGATES, 300, exactly_once=True)
    assert len(records) == 3000


def test_a_relay_whose_lease_connection_is_cut_is_fenced_and_carries_on(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    """Only the lease connection dies (a proxy cut it, an idle timeout...): the relay still reads and
    produces with its other connection until it notices, and meanwhile a successor fences it. The
    fenced relay must fail its batch cleanly, not crash, and nothing is duplicated."""
    topic = new_topic("leasecut", partitions=2)
    engine, outbox = engine_for(clean_outbox), outbox_for(topic)
    write_numbered(engine, outbox, AGGREGATES, 2000, per_transaction=2000)
    first = relay_factory(mode="transactional", batch_size=5000)
    first.wait_ready()
    wait_for(lambda: outbox_count(clean_outbox) < 20000, 20, "the first relay to be publishing")
    assert first.proc is not None
    os.kill(first.proc.pid, signal.SIGSTOP)
    group = first.env["OUTBOX_RELAY_GROUP"]
    with psycopg.connect(clean_outbox, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND starts_with(application_name, %s)",
            (f"outbox-relay:{group}/",),  # the lease connection: outbox-relay:<group>/<instance>
        )
    successor = relay_factory(mode="transactional", batch_size=5000)
    successor.wait_ready()
    time.sleep(1.0)  # the successor owns the shard and has fenced the first relay's producer
    os.kill(first.proc.pid, signal.SIGCONT)  # mid-batch, with a producer that is fenced now
    wait_for(lambda: outbox_count(clean_outbox) == 0, 60, "the outbox to drain")
    time.sleep(1.0)
    assert first.alive(), "the fenced relay crashed:\n" + first.log_path.read_text()[-3000:]
    assert successor.terminate() == 0 and first.terminate() == 0
    assert "Traceback" not in first.log_path.read_text()

    records = read_all(bootstrap_servers, topic)
    assert_complete_in_order(records, AGGREGATES, 2000, exactly_once=True)
    assert len(records) == 20000
