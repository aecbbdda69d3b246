"""A profile of the KV reader's load loop (issue 14: where the time of a load goes).

    OUTBOX_KAFKA_BOOTSTRAP_SERVERS=... .venv/bin/python -m bench.kv_load_profile [--keys 200000]
        [--values bytes|auto|json] [--top 25]

Produces KEYS keys x 100 B (bytes values with the KV writer's content-type header) to a fresh
compacted topic, then runs the reader's start and load (follow.Follower: checks, then the loop
over consumer.consume) in this thread, once without and once under cProfile, and prints the load
rate of each and the profile's top functions by own time. The topic is deleted at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
import uuid

from bench.kv_store import produce
from outboxkit.kafka import clients
from outboxkit.kafka.settings import KafkaSettings
from outboxkit.kv import KVWriter, MemoryStore
from outboxkit.kv.follow import Follower
from outboxkit.kv.values import ValueFormat


def load_once(
    kafka: KafkaSettings, topic: str, values: ValueFormat, profile: cProfile.Profile | None
) -> float:
    """Seconds of one load into a fresh memory store, in this thread."""
    follower = Follower(
        topic,
        kafka,
        MemoryStore(),
        values=values,
        batch_size=MemoryStore.batch_size,
        poll_timeout=0.05,
        load_timeout=120.0,
        partition_check_seconds=10.0,
        settings={},
        on_progress=None,
    )
    consumer = clients.consumer(
        kafka, f"bench-kv-profile-{uuid.uuid4().hex[:8]}", {"enable.partition.eof": True}
    )
    try:
        began = time.perf_counter()
        if profile is not None:
            profile.enable()
        follower._load(consumer, follower._prepare(consumer))
        if profile is not None:
            profile.disable()
        return time.perf_counter() - began
    finally:
        consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=200_000)
    parser.add_argument("--values", choices=["bytes", "auto", "json"], default="bytes")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    kafka = KafkaSettings.load()
    topic = f"bench-kv-profile-{uuid.uuid4().hex[:8]}"
    KVWriter(topic, kafka=kafka, partitions=3)
    keys = [f"key-{i:07d}" for i in range(args.keys)]
    produce(kafka, topic, keys, b"v" * 100 if args.values != "json" else b'"' + b"v" * 98 + b'"')
    try:
        plain = load_once(kafka, topic, args.values, None)
        profile = cProfile.Profile()
        profiled = load_once(kafka, topic, args.values, profile)
    finally:
        admin = clients.admin(kafka)
        admin.delete_topics([topic])[topic].result(30)
    rate = args.keys / plain
    print(f"load of {args.keys} records, values={args.values}: {rate:,.0f} records/s ({plain:.2f} s)")
    print(f"under cProfile: {args.keys / profiled:,.0f} records/s ({profiled:.2f} s)\n")
    pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
