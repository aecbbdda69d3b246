"""What publish() adds to a service's transaction (not a test; prints a table).

    python bench/bench_publish.py [--database-url URL] [--rounds 7] [--per-round 300]

Runs in a fresh database (created, migrated and dropped here). All figures come from one run
and are compared as ratios against the bare transaction measured in the same rounds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, pool, text
from sqlalchemy.engine import make_url

from outbox import Event, Outbox, migrations, publish, publish_many

PAYLOAD = {"order_id": 0, "customer": "c-123", "note": "x" * 960}  # ~1 KB of JSON
OFF = Outbox(source="bench", notify_channel=None)
ON = Outbox(source="bench", notify_channel="outbox_events")
SELECT_1 = text("SELECT 1")
INSERT_ORDER = text("INSERT INTO bench_orders (customer, total) VALUES ('c-123', 1250)")


def one_event(n: int) -> Event:
    return Event(type="order.placed", aggregate_type="order", aggregate_id=str(n), payload=PAYLOAD)


def bare(conn: Connection, n: int) -> None:
    conn.execute(INSERT_ORDER)


def with_event(outbox: Outbox) -> Callable[[Connection, int], None]:
    def body(conn: Connection, n: int) -> None:
        conn.execute(INSERT_ORDER)
        publish(conn, one_event(n), outbox=outbox)

    return body


def round_trip(conn: Connection, n: int) -> None:
    conn.execute(INSERT_ORDER)
    conn.execute(SELECT_1)


SCENARIOS: dict[str, Callable[[Connection, int], None]] = {
    "bare transaction (1 domain row)": bare,
    "+ SELECT 1 (one more round trip: the floor)": round_trip,
    "+ 1 event, NOTIFY off": with_event(OFF),
    "+ 1 event, NOTIFY on": with_event(ON),
}


def transactions(engine: Engine, body: Callable[[Connection, int], None], count: int) -> float:
    """Seconds for `count` transactions, one after another on one pooled connection."""
    start = time.perf_counter()
    for n in range(count):
        with engine.begin() as conn:
            body(conn, n)
    return time.perf_counter() - start


def concurrent(
    engine: Engine, body: Callable[[Connection, int], None], threads: int, seconds: float
) -> float:
    """Transactions per second with `threads` clients at once."""
    done = [0] * threads
    stop = time.perf_counter() + seconds

    def client(i: int) -> None:
        while time.perf_counter() < stop:
            with engine.begin() as conn:
                body(conn, i * 1_000_000 + done[i])
            done[i] += 1

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(done) / seconds


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    admin = create_engine(
        migrations.sqlalchemy_url(server_url), isolation_level="AUTOCOMMIT", poolclass=pool.NullPool
    )
    name = f"outbox_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        migrations.upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("OUTBOX_DATABASE_URL", "postgresql://outbox:outbox@127.0.0.1:5432/outbox"),
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    with fresh_database(args.database_url) as url:
        engine = create_engine(migrations.sqlalchemy_url(url), pool_size=args.threads)
        with engine.begin() as conn:
            conn.execute(
                text("CREATE TABLE bench_orders (id bigserial PRIMARY KEY, customer text, total int)")
            )
            server = conn.execute(
                text(
                    "SELECT current_setting('server_version'), current_setting('synchronous_commit'),"
                    " current_setting('fsync')"
                )
            ).one()
        print(
            f"# {platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"PostgreSQL {server[0]} (synchronous_commit={server[1]}, fsync={server[2]})"
        )
        print(f"# event payload {len(OFF.prepare(one_event(0)).payload)} bytes of JSON")

        for body in SCENARIOS.values():  # warm up: pool, prepared statements, caches
            transactions(engine, body, 200)
        samples: dict[str, list[float]] = {name: [] for name in SCENARIOS}
        for round_no in range(args.rounds):
            order = list(SCENARIOS.items())
            if round_no % 2:
                order.reverse()  # alternate order so drift hits every scenario alike
            for name, body in order:
                samples[name].append(transactions(engine, body, args.per_round) / args.per_round)

        base = statistics.median(samples["bare transaction (1 domain row)"])
        print(f"\n## one transaction at a time ({args.rounds} rounds x {args.per_round}, medians)\n")
        print("| scenario | µs per transaction | vs bare |")
        print("|---|---:|---:|")
        for name, values in samples.items():
            median = statistics.median(values)
            print(
                f"| {name} | {median * 1e6:.0f} | {median / base:.2f}x (+{(median / base - 1) * 100:.0f}%) |"
            )

        print(f"\n## {args.threads} clients at once (9 alternating rounds of 1 s, medians)\n")
        print("| scenario | transactions/s | vs bare |")
        print("|---|---:|---:|")
        slices: dict[str, list[float]] = {name: [] for name in SCENARIOS}
        for round_no in range(9):
            order = list(SCENARIOS.items())
            for name, body in order[::-1] if round_no % 2 else order:
                slices[name].append(concurrent(engine, body, args.threads, 1.0))
        rates = {name: statistics.median(values) for name, values in slices.items()}
        bare_rate = rates["bare transaction (1 domain row)"]
        for name, rate in rates.items():
            print(f"| {name} | {rate:.0f} | {rate / bare_rate:.2f}x |")

        print("\n## publish_many of 1,000 events in one transaction (median of 9, alternating)\n")
        print("| scenario | ms per call | events/s |")
        print("|---|---:|---:|")
        many: dict[str, list[float]] = {"NOTIFY off": [], "NOTIFY on": []}
        for _ in range(9):
            for label, outbox in (("NOTIFY off", OFF), ("NOTIFY on", ON)):
                events = [one_event(n) for n in range(1000)]
                start = time.perf_counter()
                with engine.begin() as conn:
                    publish_many(conn, events, outbox=outbox)
                many[label].append(time.perf_counter() - start)
        for label, times in many.items():
            median = statistics.median(times)
            print(f"| publish_many(1,000), {label} | {median * 1e3:.1f} | {1000 / median:,.0f} |")
        prep = time.perf_counter()
        for n in range(1000):
            OFF.prepare(one_event(n))
        prep_ms = (time.perf_counter() - prep) * 1e3
        print(f"\n(of which checking and serializing 1,000 events in Python: {prep_ms:.1f} ms)")
        engine.dispose()


if __name__ == "__main__":
    main()
