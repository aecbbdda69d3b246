"""The KV store's figures (issue 14): load rate into memory and into the disk store, restart on a
checkpoint with 1 % of the keys changed, get() latency, RSS per key, writer -> reader propagation.

    OUTBOX_KAFKA_BOOTSTRAP_SERVERS=... .venv/bin/python -m bench.kv_store [--keys 1000000] [--value-bytes 100]

Produces KEYS keys x VALUE_BYTES bytes once (bytes values, the KV writer's wire format: a
content-type header per record) to a fresh 3-partition compacted topic, then measures, in one run:
a memory reader loading it; a disk reader loading it; the disk reader restarted after 1 % of the keys
were overwritten; get() of random keys (memory; disk with hot keys in its cache, and with misses);
RSS growth per key of the memory load; and propagation (produce() call -> on_change in the reader)
at 1,000 updates/s for 10 s. Not a test: it prints a table (results in bench/README.md).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from outboxkit.kafka import clients
from outboxkit.kafka.settings import KafkaSettings
from outboxkit.kv import KVStore, KVWriter, Versioned
from outboxkit.kv.stores.disk import DiskStore
from outboxkit.kv.values import OCTET_STREAM, ValueFormat

HEADERS = [("content-type", OCTET_STREAM.encode())]
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def produce(kafka: KafkaSettings, topic: str, keys: list[str], value: bytes) -> None:
    producer = clients.producer(kafka, {"linger.ms": 50, "batch.size": 1_000_000, "compression.type": "lz4"})
    for key in keys:
        while True:
            try:
                producer.produce(topic, value, key, headers=HEADERS)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)


def load(
    kafka: KafkaSettings, topic: str, store: DiskStore | None = None, values: ValueFormat = "bytes"
) -> tuple[KVStore, float]:
    started = time.perf_counter()
    reader = KVStore(topic, kafka=kafka, store=store, values=values).start()
    reader.wait_ready(600)
    return reader, time.perf_counter() - started


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(samples_ns)
    return ordered[len(ordered) // 2] / 1000, ordered[int(len(ordered) * 0.99)] / 1000


def get_latency(reader: KVStore, keys: list[str], rounds: int) -> tuple[float, float]:
    """p50, p99 of get() in microseconds, one perf_counter_ns pair per call (~0.1 us of the figure)."""
    get, clock = reader.get, time.perf_counter_ns
    samples = []
    for key in keys[:rounds]:
        start = clock()
        get(key)
        samples.append(clock() - start)
    return percentiles(samples)


def propagation(
    kafka: KafkaSettings, topic: str, reader: KVStore, rate: int, seconds: float, *, prefix: str = "live"
) -> tuple[float, float, int]:
    """p50, p99 in ms of produce() -> on_change, at `rate` updates/s; and how many arrived."""
    sent: dict[str, int] = {}
    seen: list[int] = []

    def changed(key: str, _old: Versioned | None, _new: Versioned | None) -> None:
        at = sent.get(key)
        if at is not None:
            seen.append(time.perf_counter_ns() - at)

    reader.on_change(changed)
    producer = clients.producer(kafka, {"linger.ms": 0})
    producer.produce(topic, b"warm-up", "warm-up", headers=HEADERS)  # connect, producer id: not timed
    producer.flush(30)
    total = int(rate * seconds)
    started = time.perf_counter()
    for n in range(total):
        key = f"{prefix}-{n}"
        wait = started + n / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        sent[key] = time.perf_counter_ns()
        producer.produce(topic, b"x" * 100, key, headers=HEADERS)
        producer.poll(0)
    producer.flush(30)
    deadline = time.monotonic() + 30
    while len(seen) < total and time.monotonic() < deadline:
        time.sleep(0.05)
    p50, p99 = percentiles(seen)
    return p50 / 1000, p99 / 1000, len(seen)


def peer(python: str, topic: str, records: int, kafka: KafkaSettings) -> float:
    """records/s of bench/kv_peer_quix.py run by `python` (the peers' own virtualenv)."""
    script = Path(__file__).with_name("kv_peer_quix.py")
    done = subprocess.run(
        [
            python,
            str(script),
            "--topic",
            topic,
            "--records",
            str(records),
            "--bootstrap-servers",
            kafka.bootstrap_servers,
        ],
        capture_output=True,
        check=True,
        timeout=1800,
    )
    return float(json.loads(done.stdout.splitlines()[-1])["records_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument(
        "--peer-python",
        help="Python of a virtualenv with quixstreams: also time bench/kv_peer_quix.py on the topic",
    )
    args = parser.parse_args()
    kafka = KafkaSettings.load()
    topic = f"bench-kv-{uuid.uuid4().hex[:8]}"
    KVWriter(topic, kafka=kafka, partitions=3)  # the compacted topic
    keys = [f"key-{i:07d}" for i in range(args.keys)]
    value = os.urandom(args.value_bytes)
    raw = sum(len(k) for k in keys) + args.keys * args.value_bytes
    rng = random.Random(7)
    lookups = [rng.choice(keys) for _ in range(200_000)]
    t0 = time.perf_counter()
    produce(kafka, topic, keys, value)
    took = time.perf_counter() - t0
    print(f"produced {args.keys} keys x {args.value_bytes} B in {took:.1f} s ({raw / 1e6:.0f} MB raw)")
    rows: list[tuple[str, str]] = []
    peer_rate = None
    try:
        if args.peer_python:
            peer_rate = peer(args.peer_python, topic, args.keys, kafka)
            rows.append(("peer: Quix Streams into its state", f"{peer_rate:,.0f} records/s"))
        gc.collect()
        before = rss()
        memory, seconds = load(kafka, topic)
        gc.collect()
        grown = rss() - before
        rows.append(
            ("load into memory, values=bytes", f"{args.keys / seconds:,.0f} records/s ({seconds:.2f} s)")
        )
        if peer_rate:
            rows.append(("  memory load vs the peer", f"{args.keys / seconds / peer_rate:.2f}x"))
        rows.append(
            ("RSS growth per key (memory)", f"{grown / args.keys:.0f} B = {grown / raw:.2f}x raw key+value")
        )
        p50, p99 = get_latency(memory, lookups, 200_000)
        rows.append(("get() memory", f"p50 {p50:.2f} us, p99 {p99:.2f} us"))
        p50, p99, arrived = propagation(kafka, topic, memory, args.rate, 10.0)
        rows.append(
            (f"propagation at {args.rate}/s (memory)", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms ({arrived} seen)")
        )
        # The same with the loaded entries frozen out of the cyclic GC (what `outbox relay run` does
        # for its process; a service may do it after wait_ready(): docs/kv.md).
        gc.freeze()
        p50, p99 = get_latency(memory, lookups, 200_000)
        rows.append(("get() memory, after gc.freeze()", f"p50 {p50:.2f} us, p99 {p99:.2f} us"))
        p50, p99, arrived = propagation(kafka, topic, memory, args.rate, 10.0, prefix="frozen")
        rows.append(
            (
                f"propagation at {args.rate}/s, after gc.freeze()",
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms ({arrived} seen)",
            )
        )
        gc.unfreeze()
        memory.stop()
        del memory
        by_header, seconds = load(kafka, topic, values="auto")
        rows.append(
            ("load into memory, values by header", f"{args.keys / seconds:,.0f} records/s ({seconds:.2f} s)")
        )
        by_header.stop()
        del by_header
        with tempfile.TemporaryDirectory() as tmp:
            disk, seconds = load(kafka, topic, DiskStore(Path(tmp), cache_size=10_000))
            rows.append(
                ("load into disk store (LMDB)", f"{args.keys / seconds:,.0f} records/s ({seconds:.2f} s)")
            )
            if peer_rate:
                rows.append(("  disk load vs the peer", f"{args.keys / seconds / peer_rate:.2f}x"))
            hot = lookups[:1000]
            for key in hot:
                disk.get(key)
            p50, p99 = get_latency(disk, hot * 100, 100_000)
            rows.append(("get() disk, cache hit", f"p50 {p50:.2f} us, p99 {p99:.2f} us"))
            p50, p99 = get_latency(disk, lookups[1000:], 100_000)
            rows.append(("get() disk, cache miss", f"p50 {p50:.2f} us, p99 {p99:.2f} us"))
            disk.stop()
            changed = rng.sample(keys, args.keys // 100)
            produce(kafka, topic, changed, os.urandom(args.value_bytes))
            restarted, seconds = load(kafka, topic, DiskStore(Path(tmp), cache_size=10_000))
            rows.append(
                (
                    "restart on checkpoint, 1 % changed",
                    f"{seconds:.2f} s to ready, {restarted.applied} records read",
                )
            )
            assert restarted.get(changed[0]) != value, "the restart applied the changed keys"
            restarted.stop()
    finally:
        admin = clients.admin(kafka)
        admin.delete_topics([topic])[topic].result(30)
    width = max(len(name) for name, _ in rows)
    print(f"\n{'measure':<{width}}  result")
    for name, result in rows:
        print(f"{name:<{width}}  {result}")


if __name__ == "__main__":
    main()
