"""Per-aggregate commit order with concurrent writers, the late-commit trap, and no skipped events."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import psycopg
from sqlalchemy import text

from outbox import Event, publish
from tests.relay.conftest import RelayProcess
from tests.relay.events import by_key, engine_for, outbox_for
from tests.services import consume_all


def numbered(agg: str, seq: int) -> Event:
    return Event(type="test.numbered", aggregate_type="test", aggregate_id=agg, payload={"seq": seq})


def test_concurrent_writers_keep_commit_order_per_aggregate(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    """8 writers, 4 shared aggregates, some transactions held open while others commit.

    Each transaction increments its aggregate's counter row (a row lock held to commit), so the
    counter value is the transaction's commit order for that aggregate; Kafka must show it.
    """
    topic = new_topic("concurrent", partitions=2)
    engine = engine_for(clean_outbox)
    outbox = outbox_for(topic)
    aggregates = ["a", "b", "c", "d"]
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS counters (agg text PRIMARY KEY, n int NOT NULL)"))
        conn.execute(text("CREATE TABLE IF NOT EXISTS noise (id serial PRIMARY KEY, note text)"))
        conn.execute(text("TRUNCATE counters"))
        for agg in aggregates:
            conn.execute(text("INSERT INTO counters VALUES (:a, 0)"), {"a": agg})
    relay_factory(shards=2)
    per_writer = 40

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(per_writer):
            agg = rng.choice(aggregates)
            with engine.begin() as conn:
                if rng.random() < 0.5:  # write first: the transaction has an older xid than holders
                    conn.execute(text("INSERT INTO noise (note) VALUES ('x')"))
                    time.sleep(rng.random() * 0.01)
                seq = conn.execute(
                    text("UPDATE counters SET n = n + 1 WHERE agg = :a RETURNING n"), {"a": agg}
                ).scalar_one()
                publish(conn, numbered(agg, seq), outbox=outbox)
                if rng.random() < 0.2:
                    time.sleep(rng.random() * 0.15)  # held open while others commit

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with engine.connect() as conn:
        expected = dict(conn.execute(text("SELECT agg, n FROM counters")).all())  # type: ignore[arg-type]
    assert sum(expected.values()) == 8 * per_writer

    seqs = by_key(consume_all(bootstrap_servers, topic, 8 * per_writer, timeout=60))
    for agg in aggregates:
        assert seqs.get(agg, []) == list(range(1, expected[agg] + 1)), f"aggregate {agg}"


def test_the_xid_trap_and_a_late_commit_are_published_in_commit_order(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    """T1 writes first (older xid), then waits for aggregate A held by T2; T2 commits first, so A's
    order on Kafka must be T2, T1. Meanwhile T3 holds an event of B open while C's events are
    published; B's event must still come (no cursor skipped it)."""
    topic = new_topic("trap")
    engine = engine_for(clean_outbox)
    outbox = outbox_for(topic)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS noise (id serial PRIMARY KEY, note text)"))
    relay_factory()

    t2_holds_a = threading.Event()
    t1_waiting = threading.Event()
    t3_holds_b = threading.Event()
    release_b = threading.Event()

    def t1() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO noise (note) VALUES ('t1 first')"))
            t2_holds_a.wait(10)
            t1_waiting.set()
            publish(conn, numbered("A", 2), outbox=outbox)  # blocks until T2 commits

    def t2() -> None:
        t1_started.wait(10)
        with engine.begin() as conn:
            publish(conn, numbered("A", 1), outbox=outbox)
            t2_holds_a.set()
            t1_waiting.wait(10)
            time.sleep(0.5)  # T1 is now blocked on A's lock

    def t3() -> None:
        with engine.begin() as conn:
            publish(conn, numbered("B", 1), outbox=outbox)
            t3_holds_b.set()
            release_b.wait(20)

    t1_started = threading.Event()
    threads = [threading.Thread(target=f) for f in (t1, t2, t3)]
    threads[2].start()
    t3_holds_b.wait(10)
    threads[0].start()
    time.sleep(0.2)  # T1 has its xid before T2 begins
    t1_started.set()
    threads[1].start()
    threads[0].join(20)
    threads[1].join(20)
    for seq in range(1, 4):  # C commits and is published while B is still open
        with engine.begin() as conn:
            publish(conn, numbered("C", seq), outbox=outbox)
    early = by_key(consume_all(bootstrap_servers, topic, 5, timeout=30))
    assert early == {"A": [1, 2], "C": [1, 2, 3]}
    release_b.set()
    threads[2].join(20)

    seqs = by_key(consume_all(bootstrap_servers, topic, 6, timeout=30))
    assert seqs == {"A": [1, 2], "B": [1], "C": [1, 2, 3]}


def test_a_missed_notify_is_caught_by_the_poll_interval(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    topic = new_topic("nonotify")
    relay_factory(poll_interval=0.5)
    time.sleep(1.0)
    # Written by hand without NOTIFY, as an operator's script might: the poll still finds it.
    with psycopg.connect(clean_outbox) as conn:
        conn.execute(
            "INSERT INTO outbox_events (ce_id, ce_type, ce_source, ce_time, aggregate_type,"
            " aggregate_id, topic, content_type, payload)"
            " VALUES (gen_random_uuid(), 't', 'hand', '2026-01-01T00:00:00.000000Z', 'x', 'x1', %s,"
            " 'application/json', '{}'::bytea)",
            (topic,),
        )
    [msg] = consume_all(bootstrap_servers, topic, 1, timeout=30)
    assert msg.key() == b"x1"
