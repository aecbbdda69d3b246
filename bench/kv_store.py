"""The KV store's figures (issue 14): load rate into memory and into the disk store, restart on a
checkpoint with 1 % of the keys changed, get() latency, RSS per key, writer -> reader propagation.

    OUTBOX_KAFKA_BOOTSTRAP_SERVERS=... .venv/bin/python -m bench.kv_store [--keys 1000000] [--value-bytes 100]

Produces KEYS keys x VALUE_BYTES bytes once (bytes values, the KV writer's wire format: a
content-type header per record) to a fresh 3-partition compacted topic, then measures, in one run:
a memory reader loading it; a disk reader loading it; the disk reader restarted after 1 % of the keys
were overwritten; get() of random keys (memory; disk with hot keys in its cache, and with misses);
RSS growth per key of the memory load; and propagation (KVWriter.put() in a process of its own,
bench/kv_paced_writer.py, -> on_change in the reader) at 1,000 updates/s for 10 s, split at the
broker: the topic stamps each record with the time the broker appended it
(message.timestamp.type=LogAppendTime), so put() -> append (the writer's side) and append ->
on_change (the reader's side) are measured apart, in ms as the broker stamps. Floor rows time an
empty timer pair and a bare dict.get of the same keys with the same timer, in the same run; get()
is timed on random keys of the whole store and on 1,000 hot keys (the working set of a request
path). Not a test: it prints a table (results in bench/README.md).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.kv_paced_writer import sent_at_ms
from outboxkit.kafka import clients
from outboxkit.kafka.admin import ensure_topic
from outboxkit.kafka.settings import KafkaSettings
from outboxkit.kv import CompactionSettings, KVStore, KVWriter, Versioned
from outboxkit.kv.follow import give_back_memory
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


def get_latency(reader: KVStore | dict[str, bytes], keys: list[str], rounds: int) -> tuple[float, float]:
    """p50, p99 of get() in microseconds, one perf_counter_ns pair per call (~0.1 us of the figure)."""
    get, clock = reader.get, time.perf_counter_ns
    samples = []
    for key in keys[:rounds]:
        start = clock()
        get(key)
        samples.append(clock() - start)
    return percentiles(samples)


def timer_floor(rounds: int) -> tuple[float, float]:
    """p50, p99 in microseconds of an empty perf_counter_ns pair: what the timer adds to a sample."""
    clock = time.perf_counter_ns
    samples = []
    for _ in range(rounds):
        start = clock()
        samples.append(clock() - start)
    return percentiles(samples)


def propagation(
    kafka: KafkaSettings, topic: str, reader: KVStore, rate: int, seconds: float, *, prefix: str = "live"
) -> dict[str, tuple[float, float]]:
    """p50, p99 in ms at `rate` updates/s made by bench/kv_paced_writer.py in its own process:
    "total" put() -> on_change, "writer" put() -> the broker's append time, "reader" append time
    -> on_change; how many arrived ("seen"), and the writer's put() p50/p99 ("put")."""
    total_ms: list[float] = []
    writer_ms: list[float] = []
    reader_ms: list[float] = []
    mine = f"{prefix}-"

    def changed(key: str, _old: Versioned | None, new: Versioned | None) -> None:
        if new is not None and key.startswith(mine):
            now = time.time() * 1000
            at = sent_at_ms(new.value)
            total_ms.append(now - at)
            writer_ms.append(new.timestamp - at)  # LogAppendTime: the broker's clock, ms
            reader_ms.append(now - new.timestamp)

    reader.on_change(changed)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.kv_paced_writer",
            *("--topic", topic, "--rate", str(rate), "--seconds", str(seconds), "--prefix", prefix),
        ],
        capture_output=True,
        check=True,
        timeout=seconds * 10 + 60,
        env={**os.environ, "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers},
        cwd=Path(__file__).resolve().parent.parent,
    )
    writer = json.loads(done.stdout.splitlines()[-1])
    deadline = time.monotonic() + 30
    while len(total_ms) < writer["puts"] and time.monotonic() < deadline:
        time.sleep(0.05)
    found = {
        name: ms_percentiles(samples)
        for name, samples in (("total", total_ms), ("writer", writer_ms), ("reader", reader_ms))
    }
    found["seen"] = (float(len(total_ms)), writer["puts"] / writer["seconds"])
    found["put"] = (writer["put_p50_ms"], writer["put_p99_ms"])
    return found


def ms_percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]


def propagation_rows(name: str, found: dict[str, tuple[float, float]]) -> list[tuple[str, str]]:
    (p50, p99), (w50, w99), (r50, r99) = found["total"], found["writer"], found["reader"]
    rate, (put50, put99) = found["seen"][1], found["put"]
    return [
        (name, f"p50 {p50:.1f} ms, p99 {p99:.1f} ms ({found['seen'][0]:.0f} seen)"),
        ("  the writer's rate; its put() p50 / p99", f"{rate:,.0f}/s; {put50:.1f} / {put99:.1f} ms"),
        ("  of it put() -> broker append", f"p50 {w50:.1f} ms, p99 {w99:.1f} ms"),
        ("  of it broker append -> on_change", f"p50 {r50:.1f} ms, p99 {r99:.1f} ms"),
    ]


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
    admin = clients.admin(kafka)
    stamped = {**CompactionSettings().topic_config(), "message.timestamp.type": "LogAppendTime"}
    ensure_topic(admin, topic, partitions=3, config=stamped)
    KVWriter(topic, kafka=kafka, partitions=3)  # checks that it is compacted
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
        give_back_memory()  # what the load gives back after it must not count as "before"
        before = rss()
        memory, seconds = load(kafka, topic)
        gc.collect()
        give_back_memory()
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
        p50, p99 = get_latency(memory.store._data, lookups, 200_000)  # type: ignore[attr-defined]
        rows.append(("  floor: bare dict.get of the same keys", f"p50 {p50:.2f} us, p99 {p99:.2f} us"))
        p50, p99 = timer_floor(200_000)
        rows.append(("  floor: an empty timer pair", f"p50 {p50:.2f} us, p99 {p99:.2f} us"))
        hot = lookups[:1000] * 200
        p50, p99 = get_latency(memory, hot, 200_000)
        rows.append(("get() memory, 1,000 hot keys", f"p50 {p50:.2f} us, p99 {p99:.2f} us"))
        p50, p99 = get_latency(memory.store._data, hot, 200_000)  # type: ignore[attr-defined]
        rows.append(("  floor: bare dict.get of the hot keys", f"p50 {p50:.2f} us, p99 {p99:.2f} us"))
        rows += propagation_rows(
            f"propagation at {args.rate}/s (memory)", propagation(kafka, topic, memory, args.rate, 10.0)
        )
        # The same with the loaded entries frozen out of the cyclic GC (what `outbox relay run` does
        # for its process; a service may do it after wait_ready(): docs/kv.md).
        gc.freeze()
        p50, p99 = get_latency(memory, lookups, 200_000)
        rows.append(("get() memory, after gc.freeze()", f"p50 {p50:.2f} us, p99 {p99:.2f} us"))
        p50, p99 = get_latency(memory.store._data, lookups, 200_000)  # type: ignore[attr-defined]
        rows.append(("  floor: bare dict.get, after gc.freeze()", f"p50 {p50:.2f} us, p99 {p99:.2f} us"))
        rows += propagation_rows(
            f"propagation at {args.rate}/s, after gc.freeze()",
            propagation(kafka, topic, memory, args.rate, 10.0, prefix="frozen"),
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
        admin.delete_topics([topic])[topic].result(30)
    width = max(len(name) for name, _ in rows)
    print(f"\n{'measure':<{width}}  result")
    for name, result in rows:
        print(f"{name:<{width}}  {result}")


if __name__ == "__main__":
    main()
