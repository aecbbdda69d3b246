"""Real compaction (small segment.ms, tombstones kept 1 s): after Kafka has dropped overwritten
values and expired tombstones, a fresh reader's state equals the writers' model, deletes included,
over several partitions written by concurrent writers."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from outboxkit.kv import TOMBSTONE, CompactionSettings, KVStore, KVWriter
from tests.outboxkit.kv.test_writer import records_of

PARTITIONS = 3
FAST_COMPACTION = CompactionSettings(
    segment_ms=200, min_compaction_lag_ms=0, delete_retention_ms=1_000, min_cleanable_dirty_ratio=0.01
)


def records_in_log(bootstrap_servers: str, topic: str) -> int:
    return len(records_of(bootstrap_servers, topic, PARTITIONS))


def test_state_after_real_compaction_equals_the_writers_model(
    bootstrap_servers: str, kv_topic: Callable[[], str]
) -> None:
    topic = kv_topic()
    KVWriter(topic, kafka=bootstrap_servers, partitions=PARTITIONS, compaction=FAST_COMPACTION)
    keys = [f"key-{i}" for i in range(60)]
    written: list[tuple[tuple[int, int], str, Any]] = []  # (version, key, value or TOMBSTONE)
    lock = threading.Lock()

    def write(writer_no: int) -> None:
        writer = KVWriter(topic, kafka=bootstrap_servers, create=False)
        rng = random.Random(writer_no)
        for round_ in range(8):
            batch = [
                (key, TOMBSTONE if rng.random() < 0.25 else {"w": writer_no, "r": round_})
                for key in rng.sample(keys, 40)
            ]
            versions = writer.put_many(batch)
            with lock:
                written.extend((v, k, value) for v, (k, value) in zip(versions, batch, strict=True))
            time.sleep(0.3)  # segments roll (segment.ms) so earlier ones become compactable

    writers = [threading.Thread(target=write, args=(n,)) for n in range(3)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    model: dict[str, Any] = {}
    for _version, key, value in sorted(written, key=lambda w: w[0]):  # per key: one partition, offset order
        if value is TOMBSTONE:
            model.pop(key, None)
        else:
            model[key] = value
    # Compaction only runs on closed segments: keep rolling them until it has visibly happened.
    roller = KVWriter(topic, kafka=bootstrap_servers, create=False)
    deadline = time.monotonic() + 60
    in_log = records_in_log(bootstrap_servers, topic)
    while in_log > len(written) // 2 and time.monotonic() < deadline:
        for p in range(PARTITIONS):
            roller.put_many([(f"roll-{p}-{i}", TOMBSTONE) for i in range(3)])
        time.sleep(1.0)
        in_log = records_in_log(bootstrap_servers, topic)
    assert in_log <= len(written) // 2, f"compaction did not run: {in_log} of {len(written)} records left"
    with KVStore(topic, kafka=bootstrap_servers) as store:
        store.wait_ready(30)
        state = dict(store.items())
    assert state == model, "the reader's state is the writers' last word on every key"
    assert len(model) < len(keys), "some keys ended deleted (the test covers deletes)"
