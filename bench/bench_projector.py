"""Projector throughput: applied events/s for a simple upsert projection with batching, and what the
dedupe checks cost (row version guard; ce_id dedupe), measured in one run and printed as ratios.

    OUTBOX_DATABASE_URL=... OUTBOX_KAFKA_BOOTSTRAP_SERVERS=... .venv/bin/python -m bench.bench_projector

It creates a scratch database and a topic, produces EVENTS events once, then runs each variant
from offset 0 into an empty table. The rate counts from the first applied batch to the last (the
consumer group join is left out). Not a test: it prints a table (results in bench/README.md).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from collections.abc import Sequence

import orjson
import psycopg
import sqlalchemy as sa
from confluent_kafka.admin import NewTopic
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url

from outbox import migrations
from outbox.config import OutboxSettings
from outboxkit.kafka import clients
from outboxkit.kafka.records import ReceivedEvent
from projectors.config import ProjectorConfig
from projectors.database import engine_for
from projectors.projector import Projector
from projectors.runtime import ProjectorRunner
from projectors.versioning import version_columns, version_of, versioned_upsert, versioned_upsert_many

metadata = sa.MetaData()
counters = sa.Table(
    "bench_counters",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
    *version_columns(),
)


def build(topic: str, name: str, *, guarded: bool, dedupe: bool, batch: bool, batch_size: int) -> Projector:
    config = ProjectorConfig(batch_size=batch_size, dedupe_event_ids=dedupe, batch_timeout=0.05)
    projector = Projector(name, [topic], metadata=metadata, config=config)
    upsert = versioned_upsert(counters, ["key"], guarded=guarded)

    def row(event: ReceivedEvent) -> dict[str, object]:
        return {"key": event.subject, "value": event.payload["value"], **version_of(event)}

    if batch:

        @projector.handles("counter.set", batch=True)
        def apply_many(events: Sequence[ReceivedEvent], conn: Connection) -> None:
            conn.execute(versioned_upsert_many(counters, ["key"], [row(e) for e in events], guarded=guarded))

    else:

        @projector.handles("counter.set")
        def apply_one(event: ReceivedEvent, conn: Connection) -> None:
            conn.execute(upsert, row(event))

    return projector


def produce(bootstrap: str, topic: str, events: int, keys: int) -> None:
    producer = clients.producer(bootstrap, {"linger.ms": 20})
    for i in range(events):
        key = f"key-{i % keys:06d}"
        headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", str(uuid.uuid4()).encode()),
            ("ce_type", b"counter.set"),
            ("ce_source", b"bench"),
            ("ce_time", b"2026-11-26T12:00:00.000000Z"),
            ("ce_subject", key.encode()),
            ("content-type", b"application/json"),
        ]
        while True:
            try:
                producer.produce(topic, key=key.encode(), value=orjson.dumps({"value": i}), headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120):
        raise SystemExit("Kafka did not take the benchmark's events")


def applied(engine: Engine, name: str) -> int:
    with engine.connect() as conn:
        total = conn.execute(
            sa.text("SELECT coalesce(sum(next_offset), 0) FROM projector_offsets WHERE projector = :p"),
            {"p": name},
        ).scalar_one()
    return int(total)


def measure(engine: Engine, bootstrap: str, projector: Projector, events: int) -> tuple[float, int]:
    """(seconds, events) from the first applied batch to the last."""
    with engine.begin() as conn:
        conn.execute(counters.delete())
    runner = ProjectorRunner(projector, engine, bootstrap)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    try:
        first = 0
        while first == 0:
            time.sleep(0.01)
            first = applied(engine, projector.name)
        started = time.perf_counter()
        while applied(engine, projector.name) < events:
            time.sleep(0.02)
        return time.perf_counter() - started, events - first
    finally:
        stop.set()
        thread.join(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument(
        "--per-event", type=int, default=10_000, help="events for the one-statement-per-event row"
    )
    args = parser.parse_args()
    settings = OutboxSettings()
    bootstrap = settings.kafka_bootstrap_servers

    database = f"outboxkit_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    admin = clients.admin(bootstrap)
    big, small = (f"bench-projector-{uuid.uuid4().hex[:8]}" for _ in range(2))
    for topic in (big, small):
        admin.create_topics([NewTopic(topic, num_partitions=args.partitions, replication_factor=1)])[
            topic
        ].result(30)
    url = make_url(settings.database_url).set(database=database).render_as_string(hide_password=False)
    engine = engine_for(url)
    try:
        migrations.upgrade(url)
        with engine.begin() as conn:
            metadata.create_all(conn)
        produce(bootstrap, big, args.events, args.keys)
        produce(bootstrap, small, args.per_event, args.keys)

        variants = [
            ("batch upsert, no guard, no ce_id dedupe", big, False, False, True),
            ("batch upsert + version guard", big, True, False, True),
            ("batch upsert + version guard + ce_id dedupe (default)", big, True, True, True),
            ("one upsert per event + version guard + ce_id dedupe", small, True, True, False),
        ]
        # Variants take turns, round after round, so that load from elsewhere hits them alike.
        rates: dict[str, list[float]] = {label: [] for label, *_ in variants}
        counts: dict[str, int] = {}
        for round_no in range(args.rounds):
            for index, (label, topic, guarded, dedupe, batch) in enumerate(variants):
                projector = build(
                    topic,
                    f"bench-{round_no}-{index}",
                    guarded=guarded,
                    dedupe=dedupe,
                    batch=batch,
                    batch_size=args.batch_size,
                )
                total = args.events if topic == big else args.per_event
                seconds, counts[label] = measure(engine, bootstrap, projector, total)
                rates[label].append(counts[label] / seconds)

        base = statistics.median(rates[variants[0][0]])
        print(
            f"\n{args.events} events, {args.keys} keys, {args.partitions} partitions, "
            f"batch size {args.batch_size}, median of {args.rounds} rounds\n"
        )
        print(f"| {'variant':<55} | {'events':>7} | {'events/s':>8} | {'min-max':>13} | {'vs first':>8} |")
        print(f"|{'-' * 57}|{'-' * 8}:|{'-' * 9}:|{'-' * 14}:|{'-' * 9}:|")
        for label, *_ in variants:
            rate = statistics.median(rates[label])
            spread = f"{min(rates[label]):.0f}-{max(rates[label]):.0f}"
            print(f"| {label:<55} | {counts[label]:>7} | {rate:>8.0f} | {spread:>13} | {rate / base:>8.2f} |")
    finally:
        engine.dispose()
        admin.delete_topics([big, small])
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
