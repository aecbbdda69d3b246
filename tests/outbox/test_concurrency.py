"""Concurrent writers: per aggregate, outbox id order is commit order (the relay reads by id)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import orjson
from sqlalchemy import Connection, Engine, text

from outbox import Event, publish, publish_many
from tests.outbox.conftest import outbox_rows
from tests.outbox.models import TEST_OUTBOX


def event(aggregate_id: str, label: str) -> Event:
    return Event(
        type="order.updated", aggregate_type="order", aggregate_id=aggregate_id, payload={"l": label}
    )


def waiting_on_advisory_lock(engine: Engine, pid: int) -> bool:
    with engine.connect() as conn:
        wait = conn.execute(
            text("SELECT wait_event FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ).scalar_one_or_none()
    return wait == "advisory"


def backend_pid(conn: Connection) -> int:
    return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


@contextmanager
def blocked_in_thread(engine: Engine, pid: int, writer: Callable[[], None]) -> Iterator[None]:
    """Run `writer` (on the connection of backend `pid`) in a thread; enter once it waits on a lock."""
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(writer)
        deadline = time.monotonic() + 10
        while not waiting_on_advisory_lock(engine, pid):
            assert time.monotonic() < deadline, "the writer never waited on the aggregate's lock"
            time.sleep(0.02)
        yield
        future.result(timeout=10)


def test_second_writer_of_an_aggregate_waits_and_ids_follow_commit_order(engine: Engine) -> None:
    second_done = threading.Event()
    with engine.connect() as first, engine.connect() as second:
        second_pid = backend_pid(second)
        # The trap: the second writer gets its transaction id first (it writes a domain row),
        # then publishes while the first holds the aggregate. It commits last with the older xid.
        second.execute(text("INSERT INTO orders (id, status) VALUES (1, 'second')"))
        publish(first, event("42", "first-a"), outbox=TEST_OUTBOX)

        def second_writer() -> None:
            publish(second, event("42", "second"), outbox=TEST_OUTBOX)
            second_done.set()
            second.commit()

        with blocked_in_thread(engine, second_pid, second_writer):
            # Another aggregate is not held up by the lock on order 42.
            with engine.begin() as third:
                publish(third, event("43", "other aggregate"), outbox=TEST_OUTBOX)
            publish(first, event("42", "first-b"), outbox=TEST_OUTBOX)
            assert not second_done.is_set()
            first.commit()

    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, xmin::text::bigint AS xid, payload FROM outbox_events ORDER BY id")
        ).all()
    labels = [orjson.loads(row.payload)["l"] for row in rows]
    assert labels == ["first-a", "other aggregate", "first-b", "second"]
    by_label = {orjson.loads(row.payload)["l"]: row for row in rows}
    # Ordering by transaction id would have put "second" before the first writer's events.
    assert by_label["second"].xid < by_label["first-a"].xid
    assert by_label["second"].id > by_label["first-b"].id


def test_many_concurrent_writers_keep_commit_order_per_aggregate(engine: Engine) -> None:
    aggregates = ["a", "b", "c"]
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS commit_counter (agg text PRIMARY KEY, n int)"))
        conn.execute(text("TRUNCATE commit_counter"))
        for agg in aggregates:
            conn.execute(text("INSERT INTO commit_counter VALUES (:a, 0)"), {"a": agg})

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(15):
            agg = rng.choice(aggregates)
            with engine.begin() as conn:
                written = event(agg, f"w{seed}")
                publish(conn, written, outbox=TEST_OUTBOX)
                time.sleep(rng.random() * 0.003)
                # After publishing: the counter's row lock hands out n in commit order; without
                # the advisory lock in publish(), a later id could commit with a smaller n.
                n = conn.execute(
                    text("UPDATE commit_counter SET n = n + 1 WHERE agg = :a RETURNING n"),
                    {"a": agg},
                ).scalar_one()
                conn.execute(
                    text(
                        "UPDATE outbox_events SET headers = jsonb_build_object('n', CAST(:n AS text))"
                        " WHERE ce_id = :id"
                    ),
                    {"n": n, "id": written.id},
                )

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(writer, range(6)))

    rows = outbox_rows(engine)
    assert len(rows) == 90
    for agg in aggregates:
        commit_order = [int(row["headers"]["n"]) for row in rows if row["aggregate_id"] == agg]
        assert commit_order == list(range(1, len(commit_order) + 1)), agg


def test_publish_many_locks_in_sorted_order_so_writers_do_not_deadlock(engine: Engine) -> None:
    with engine.connect() as first, engine.connect() as second:
        second_pid = backend_pid(second)
        publish(first, event("x", "first"), outbox=TEST_OUTBOX)  # first holds x

        def second_writer() -> None:
            # Lists z before x. Locking in list order would take z, then wait for x while
            # holding z, and the first writer's z below would deadlock; sorted, it waits for x
            # first, holding nothing.
            publish_many(second, [event("z", "second"), event("x", "second")], outbox=TEST_OUTBOX)
            second.commit()

        with blocked_in_thread(engine, second_pid, second_writer):
            publish(first, event("z", "first"), outbox=TEST_OUTBOX)  # would deadlock here
            first.commit()

    rows = [(row["aggregate_id"], orjson.loads(row["payload"])["l"]) for row in outbox_rows(engine)]
    assert rows == [("x", "first"), ("z", "first"), ("z", "second"), ("x", "second")]
