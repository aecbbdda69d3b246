"""The polling relay vs the CDC relay (Debezium in Kafka Connect), same run, same workload (not a test).

    python bench/bench_cdc.py [--events 50000] [--rate 200] [--seconds 15]

Needs PostgreSQL, Kafka and Kafka Connect with Debezium and outboxkit's transform (stack/stack up);
addresses from OUTBOX_... variables or the stack's stack.env. Each relay gets a fresh database
(created, migrated and dropped here) and fresh topics (one partition).

- drain: `--events` events of ~1 KB (100 aggregates, 500 per transaction) wait in the outbox, then
  the relay starts (polling: the process is launched; CDC: the paused connector resumes, its slot
  holding the WAL). Rate = events / (last record visible to a read_committed consumer - start);
  "first" is how long after the start the first record was visible (start-up cost: a Python
  process vs. resuming a task). First-to-last excludes it, but flatters a transactional relay
  whose records become visible in large commits; both are shown.
- latency: one event per transaction at `--rate` per second for `--seconds`, relay running; latency
  = a read_committed consumer's receipt - the writer's commit return (one clock, one process).
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import psycopg
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, NewTopic
from sqlalchemy import Engine, create_engine, pool
from sqlalchemy.engine import make_url

from outbox import Event, Outbox, TopicRouter, migrations, publish, publish_many
from outbox.config import OutboxSettings
from outboxkit.kafka import clients
from relay.cdc import CdcSettings, connector_config
from relay.connect import ConnectClient
from relay.slot import drop_publication, drop_slot, slot_lag

REPO = Path(__file__).resolve().parent.parent
PAD = "x" * 960  # ~1 KB of JSON per event
AGGREGATES = 100


def addresses() -> dict[str, str]:
    values = {
        "OUTBOX_DATABASE_URL": "postgresql://outbox:outbox@127.0.0.1:5432/outbox",
        "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "OUTBOX_CONNECT_URL": "http://127.0.0.1:8083",
    }
    env_file = Path(os.environ.get("OUTBOX_STACK_DIR") or REPO / ".stack") / "stack.env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            key, _, value = line.partition("=")
            if key in values:
                values[key] = value
    values.update({k: os.environ[k] for k in values if os.environ.get(k)})
    return values


class Collector:
    """A read_committed consumer in a thread: receipt time of each record's `seq`."""

    def __init__(self, bootstrap: str, topic: str, expected: int) -> None:
        self.seen: dict[int, float] = {}
        self.expected = expected
        self.consumer = clients.consumer(bootstrap, f"bench-{uuid.uuid4().hex[:8]}", {"fetch.wait.max.ms": 5})
        self.consumer.subscribe([topic])
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while len(self.seen) < self.expected:
            for msg in self.consumer.consume(1000, timeout=0.1):
                if msg.error() is not None:
                    if msg.error().code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                        raise RuntimeError(msg.error())
                    continue
                self.seen.setdefault(int(orjson.loads(msg.value())["seq"]), time.monotonic())
        self.consumer.close()

    def wait(self, timeout: float) -> None:
        self.thread.join(timeout)
        if len(self.seen) < self.expected:
            raise RuntimeError(f"only {len(self.seen)} of {self.expected} events arrived in {timeout}s")


def event(seq: int) -> Event:
    return Event(
        type="bench.event",
        aggregate_type="bench",
        aggregate_id=f"agg-{seq % AGGREGATES}",
        payload={"seq": seq, "pad": PAD},
        traceparent=None,
    )


def write_backlog(engine: Engine, outbox: Outbox, events: int) -> None:
    for start in range(0, events, 500):
        with engine.begin() as conn:
            publish_many(conn, [event(s) for s in range(start, min(events, start + 500))], outbox=outbox)


def write_steady(engine: Engine, outbox: Outbox, rate: float, seconds: float) -> dict[int, float]:
    committed: dict[int, float] = {}
    began = time.monotonic()
    for seq in range(int(rate * seconds)):
        delay = began + seq / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        with engine.begin() as conn:
            publish(conn, event(seq), outbox=outbox)
        committed[seq] = time.monotonic()
    return committed


class PollingRelay:
    def __init__(self, database_url: str, bootstrap: str, mode: str) -> None:
        self.env = dict(os.environ)
        self.env.update(
            {
                "OUTBOX_DATABASE_URL": database_url,
                "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "OUTBOX_RELAY_MODE": mode,
                "OUTBOX_RELAY_GROUP": f"bench-{uuid.uuid4().hex[:8]}",
                "OUTBOX_RELAY_METRICS_PORT": "0",
            }
        )
        self.env["OUTBOX_RELAY_PROGRESS_TOPIC"] = self.env["OUTBOX_RELAY_GROUP"] + "-progress"
        self.proc: subprocess.Popen[bytes] | None = None

    def prepare(self) -> None:
        """Nothing to do before the backlog is written: the relay is not running."""

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "outboxkit", "relay", "run", "--log-level", "WARNING"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)


class CdcRelay:
    def __init__(self, database_url: str, connect_url: str) -> None:
        tag = uuid.uuid4().hex[:8]
        self.database_url = database_url
        self.settings = CdcSettings(
            connector_name=f"bench-{tag}",
            slot_name=f"bench_{tag}",
            publication=f"bench_{tag}",
            topic_prefix=f"bench-{tag}",
            exactly_once=True,
        )
        outbox = OutboxSettings(database_url=database_url, connect_url=connect_url)
        self.config = connector_config(outbox, self.settings)
        self.client = ConnectClient(connect_url)

    def prepare(self) -> None:
        """Register, wait until the slot streams, then pause: the backlog waits in the WAL."""
        self.client.put_config(self.settings.connector_name, self.config)
        self.client.wait(self.settings.connector_name)
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while not ((lag := slot_lag(conn, self.settings.slot_name)) and lag.active):
                time.sleep(0.2)
        self.client.pause(self.settings.connector_name)
        self.client.wait(self.settings.connector_name, state="PAUSED")

    def start(self) -> None:
        if self.client.status(self.settings.connector_name) is None:
            self.prepare()
        self.client.resume(self.settings.connector_name)

    def stop(self) -> None:
        self.client.delete(self.settings.connector_name)
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while (lag := slot_lag(conn, self.settings.slot_name)) and lag.active:
                time.sleep(0.2)
            drop_slot(conn, self.settings.slot_name)
            drop_publication(conn, self.settings.publication)
        self.client.close()


Relay = PollingRelay | CdcRelay


def new_topic(admin: AdminClient, prefix: str) -> str:
    name = f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(timeout=30)
    return name


def drain(
    make: Callable[[], Relay], engine: Engine, admin: AdminClient, bootstrap: str, n: int
) -> tuple[float, float, float]:
    topic = new_topic(admin, "drain")
    outbox = Outbox(router=TopicRouter(topic))
    relay = make()
    relay.prepare()
    write_backlog(engine, outbox, n)
    collector = Collector(bootstrap, topic, n)
    started = time.monotonic()
    relay.start()
    try:
        collector.wait(600)
    finally:
        relay.stop()
        admin.delete_topics([topic])
    times = sorted(collector.seen.values())
    return n / (times[-1] - started), n / (times[-1] - times[0]), times[0] - started


def latency(
    make: Callable[[], Relay],
    engine: Engine,
    admin: AdminClient,
    bootstrap: str,
    *,
    rate: float,
    seconds: float,
) -> list[float]:
    topic = new_topic(admin, "latency")
    outbox = Outbox(router=TopicRouter(topic))
    relay = make()
    relay.start()
    # Warm up: one event through, so start-up is not measured.
    warm = Collector(bootstrap, topic, 1)
    with engine.begin() as conn:
        publish(conn, event(-1), outbox=outbox)
    warm.wait(120)
    total = int(rate * seconds)
    collector = Collector(bootstrap, topic, total + 1)
    try:
        committed = write_steady(engine, outbox, rate, seconds)
        collector.wait(120)
    finally:
        relay.stop()
        admin.delete_topics([topic])
    return sorted((collector.seen[s] - committed[s]) * 1000 for s in committed)


def percentile(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="backlog size of the drain")
    parser.add_argument("--rate", type=float, default=200, help="events per second for latency")
    parser.add_argument("--seconds", type=float, default=15, help="duration of the latency run")
    args = parser.parse_args()
    where = addresses()
    bootstrap, connect_url = where["OUTBOX_KAFKA_BOOTSTRAP_SERVERS"], where["OUTBOX_CONNECT_URL"]
    admin_url = migrations.sqlalchemy_url(where["OUTBOX_DATABASE_URL"])
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)
    kafka = clients.admin(bootstrap)
    relays: dict[str, Callable[[str], Relay]] = {
        "polling, idempotent": lambda url: PollingRelay(url, bootstrap, "idempotent"),
        "polling, transactional": lambda url: PollingRelay(url, bootstrap, "transactional"),
        "CDC (Debezium, exactly-once)": lambda url: CdcRelay(url, connect_url),
    }
    results: dict[str, tuple[tuple[float, float, float], list[float]]] = {}
    for name, factory in relays.items():
        db = f"bench_cdc_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{db}"')
        url = make_url(where["OUTBOX_DATABASE_URL"]).set(database=db).render_as_string(hide_password=False)
        try:
            migrations.upgrade(url)
            engine = create_engine(migrations.sqlalchemy_url(url), pool_size=2)
            print(f"{name}: drain of {args.events} events ...", file=sys.stderr, flush=True)
            rate = drain(lambda url=url, f=factory: f(url), engine, kafka, bootstrap, args.events)
            print(f"{name}: latency at {args.rate:.0f}/s ...", file=sys.stderr, flush=True)
            lat = latency(
                lambda url=url, f=factory: f(url),
                engine,
                kafka,
                bootstrap,
                rate=args.rate,
                seconds=args.seconds,
            )
            results[name] = (rate, lat)
            engine.dispose()
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    (base_rate, base_steady, _), base_lat = results["polling, idempotent"]
    print(f"\n{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"drain: {args.events} x ~1 KB events; latency: {args.rate:.0f} events/s for {args.seconds:.0f} s\n"
    )
    print(
        "| relay | drain from start (events/s) | vs polling | first→last (events/s) | vs polling "
        "| first after (s) | latency p50 (ms) | p99 (ms) | max (ms) | p50 vs polling |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, ((rate, steady, first), lat) in results.items():
        p50 = statistics.median(lat)
        print(
            f"| {name} | {rate:,.0f} | {rate / base_rate:.2f}x | {steady:,.0f} | {steady / base_steady:.2f}x"
            f" | {first:.2f} | {p50:.1f}"
            f" | {percentile(lat, 0.99):.1f} | {lat[-1]:.1f} | {p50 / statistics.median(base_lat):.2f}x |"
        )


if __name__ == "__main__":
    main()
