"""Polling relay benchmark (not a test): drain rate, the raw producer ceiling, latency, relay RSS.

    python bench/bench_relay.py [--events 1000000] [--rate 1000] [--seconds 20]

Same run, same machine, 1 KB JSON events:
  (a) drain of a backlog of --events in each mode (idempotent, transactional), relay RSS sampled;
  (b) the raw confluent-kafka producer rate for the same records (the ceiling);
  (c) commit -> Kafka latency p50/p99 at a steady --rate events/s written through publish().
Uses the addresses of `stack/stack env` (OUTBOX_... variables), a fresh database (dropped at the
end) and fresh topics. Prints a table; results go to bench/README.md by hand.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, cast

import orjson
import psycopg
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from sqlalchemy import create_engine, pool

from outbox import Event, Outbox, OutboxSettings, TopicRouter, migrations, publish
from outbox.envelope import encode
from outboxkit.kafka import clients
from outboxkit.kafka.admin import ensure_topic

REPO = Path(__file__).resolve().parent.parent
PAD = "x" * 960  # with the other fields, ~1 KB of JSON


def fill(url: str, topic: str, events: int) -> None:
    """A backlog of `events` rows, generated server-side (the bench measures the relay, not publish())."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO outbox_events (ce_id, ce_type, ce_source, ce_time, aggregate_type, aggregate_id,"
            " topic, content_type, payload)"
            " SELECT gen_random_uuid(), 'bench.event', 'bench', to_char(now() AT TIME ZONE 'UTC',"
            " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), 'bench', 'agg-' || (i %% 1000), %s, 'application/json',"
            " convert_to('{\"seq\":' || i || ',\"pad\":\"' || %s || '\"}', 'UTF8')"
            " FROM generate_series(1, %s) AS i",
            (topic, PAD, events),
        )


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_relay(
    url: str,
    bootstrap: str,
    mode: str,
    *,
    group: str | None = None,
    shards: int = 1,
    batch_size: int | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """`outbox relay run` as a process; returns once its /healthz answers 200 (start-up excluded).
    Through the command, not PollingRelay in this process: the figures include the daemon's
    process-wide tuning (`tune_gc()` in outboxkit/cli/relay.py), as a deployed relay runs."""
    port = free_port()
    env = dict(
        os.environ,
        OUTBOX_DATABASE_URL=url,
        OUTBOX_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        OUTBOX_RELAY_MODE=mode,
        OUTBOX_RELAY_GROUP=group or f"bench-{mode}-{uuid.uuid4().hex[:6]}",
        OUTBOX_RELAY_SHARDS=str(shards),
        OUTBOX_RELAY_METRICS_PORT=str(port),
        OUTBOX_RELAY_POLL_INTERVAL="0.1",
        OUTBOX_RELAY_PROGRESS_TOPIC=f"bench-progress-{uuid.uuid4().hex[:6]}",
    )
    if batch_size is not None:
        env["OUTBOX_RELAY_BATCH_SIZE"] = str(batch_size)
    relay = subprocess.Popen(
        [sys.executable, "-m", "outboxkit", "relay", "run", "--log-level", "WARNING"],
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return relay, port
        except OSError:
            pass
        time.sleep(0.2)
    relay.kill()
    raise SystemExit("the relay did not become healthy within 60 s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def drain(
    url: str, bootstrap: str, mode: str, events: int, relays: int = 1, *, batch_size: int | None = None
) -> dict[str, Any]:
    """Start `relays` relays (one key-hash shard each) on an empty outbox, commit a backlog of
    `events` at once, time the drain. `batch_size` None: the relay's default."""
    topic = f"bench-drain-{mode}-{uuid.uuid4().hex[:6]}"
    group = f"bench-{mode}-{uuid.uuid4().hex[:6]}"
    procs = [
        start_relay(url, bootstrap, mode, group=group, shards=relays, batch_size=batch_size)[0]
        for _ in range(relays)
    ]
    relay = procs[0]
    fill(url, topic, events)
    started = time.perf_counter()
    samples: list[int] = []
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            time.sleep(0.25)
            samples.append(rss_kib(relay.pid))
            # An index probe, not count(*): the check must not load the database it measures.
            left = conn.execute("SELECT EXISTS (SELECT 1 FROM outbox_events WHERE published_at IS NULL)")
            row = left.fetchone()
            if row is not None and not row[0]:
                break
    seconds = time.perf_counter() - started
    for proc in procs:
        proc.terminate()
        proc.wait(30)
    # What autovacuum does after a drain, done at once: a million dead index entries would slow the
    # next phase's every read until it runs.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM outbox_events")
    return {
        "mode": f"{mode}, {relays} relay{'s' if relays > 1 else ''}"
        + (f", batch {batch_size}" if batch_size is not None else ""),
        "events": events,
        "seconds": seconds,
        "rate": events / seconds,
        "rss_first": samples[0] // 1024,
        "rss_max": max(samples) // 1024,
        "rss_last": samples[-1] // 1024,
    }


def ceiling(url: str, bootstrap: str, events: int) -> dict[str, Any]:
    """The same records from memory through one idempotent producer: what Kafka + librdkafka allow."""
    topic = f"bench-raw-{uuid.uuid4().hex[:6]}"
    fill(url, topic, min(events, 100_000))
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id, ce_id::text, ce_type, ce_source, ce_time, aggregate_type, aggregate_id, topic,"
            " content_type, payload, headers, traceparent FROM outbox_events ORDER BY id"
        ).fetchall()
        conn.execute("TRUNCATE outbox_events")
    records = [encode(*row[1:]) for row in rows]
    producer = clients.producer(
        bootstrap, {"linger.ms": 5, "batch.num.messages": 10_000, "queue.buffering.max.messages": 200_000}
    )
    started = time.perf_counter()
    sent = 0
    while sent < events:
        for record in records[: events - sent]:
            while True:
                try:
                    producer.produce(
                        record.topic, record.value, record.key, headers=cast(Any, record.headers)
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
            sent += 1
    producer.flush(120)
    seconds = time.perf_counter() - started
    return {"events": events, "seconds": seconds, "rate": events / seconds}


def latency(url: str, bootstrap: str, rate: int, seconds: float) -> dict[str, Any]:
    """Events written through publish() at a steady `rate`; commit return -> consumer receipt."""
    topic = f"bench-latency-{uuid.uuid4().hex[:6]}"
    ensure_topic(clients.admin(bootstrap), topic, partitions=1)
    relay, _ = start_relay(url, bootstrap, "idempotent")
    consumer = clients.consumer(bootstrap, f"bench-{uuid.uuid4().hex[:6]}", {"fetch.wait.max.ms": 5})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    latencies: list[tuple[int, float]] = []
    total = int(rate * seconds)
    done = threading.Event()

    def write() -> None:
        engine = create_engine(migrations.sqlalchemy_url(url), poolclass=pool.QueuePool)
        outbox = Outbox(router=TopicRouter(topic))
        start = time.perf_counter()
        for i in range(total):
            target = start + i / rate
            pause = target - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            with engine.begin() as conn:
                publish(
                    conn,
                    Event(
                        type="bench.event",
                        aggregate_type="bench",
                        aggregate_id=f"agg-{i % 100}",
                        payload={"seq": i, "pad": PAD[:900]},
                    ),
                    outbox=outbox,
                )
            committed[i] = time.time()  # when the commit returned; the consumer matches by seq
        engine.dispose()
        done.set()

    committed: dict[int, float] = {}
    writer = threading.Thread(target=write)
    writer.start()
    deadline = time.monotonic() + seconds + 30
    while len(latencies) < total and time.monotonic() < deadline:
        msg = consumer.poll(0.05)
        if msg is None or msg.error():
            continue
        received = time.time()
        seq = orjson.loads(msg.value() or b"{}")["seq"]
        while seq not in committed and not done.is_set():
            time.sleep(0.0005)
        if seq in committed:
            latencies.append((seq, max(0.0, received - committed[seq]) * 1000))
    writer.join()
    consumer.close()
    relay.terminate()
    relay.wait(30)
    # The first second warms up the producer (id, topic metadata) and the connections: left out.
    steady = sorted(ms for seq, ms in latencies if seq >= rate)
    worst = max(latencies, key=lambda item: item[1])
    return {
        "rate": rate,
        "events": len(steady),
        "p50": statistics.median(steady),
        "p99": steady[int(len(steady) * 0.99) - 1],
        "max": steady[-1],
        "worst_seq": worst[0],
    }


def drop_database(base: str, name: str) -> None:
    """DROP DATABASE, waiting out autovacuum (busy after a million deletes; not ours to terminate)."""
    for _ in range(30):
        try:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            return
        except psycopg.errors.ObjectInUse:
            time.sleep(1)
    print(f"could not drop database {name}; drop it by hand", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--compare-batch",
        type=int,
        default=1000,
        help="Also drain (idempotent, 1 relay) with this batch size, to compare with the default.",
    )
    args = parser.parse_args()
    settings = OutboxSettings()
    base = settings.database_url
    name = f"bench_relay_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + "/" + name
    try:
        migrations.upgrade(url)
        bootstrap = settings.kafka_bootstrap_servers
        raw = ceiling(url, bootstrap, args.events)
        print("ceiling", raw, flush=True)
        drains = []
        for mode in ("idempotent", "transactional"):
            for relays in (1, 2):
                drains.append(drain(url, bootstrap, mode, args.events, relays))
                print("drain", drains[-1], flush=True)
        if args.compare_batch:
            smaller = drain(url, bootstrap, "idempotent", args.events, 1, batch_size=args.compare_batch)
            drains.insert(1, smaller)
            print("drain", drains[1], flush=True)
        lat = latency(url, bootstrap, args.rate, args.seconds)
    finally:
        drop_database(base, name)

    print(f"\n1 KB JSON events, {args.events:,} per drain; machine: {os.cpu_count()} cores")
    print(f"{'what':<50}{'events/s':>12}{'x ceiling':>11}{'seconds':>10}{'RSS MiB first/max/last':>26}")
    print(f"{'raw producer (ceiling)':<50}{raw['rate']:>12,.0f}{1.0:>11.2f}{raw['seconds']:>10.1f}")
    for d in drains:
        rss = f"{d['rss_first']}/{d['rss_max']}/{d['rss_last']}"
        print(
            f"{'relay drain, ' + d['mode']:<50}{d['rate']:>12,.0f}{d['rate'] / raw['rate']:>11.2f}"
            f"{d['seconds']:>10.1f}{rss:>26}"
        )
    print(
        f"\ncommit -> Kafka latency at {lat['rate']} events/s ({lat['events']} events, idempotent): "
        f"p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms"
    )
    print(orjson.dumps({"ceiling": raw, "drains": drains, "latency": lat}).decode())


if __name__ == "__main__":
    main()
