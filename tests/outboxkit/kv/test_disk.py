"""The disk store on the real broker: a reader killed with -9 while loading or while following
comes back on its disk store with the state of a fresh load, reading only the tail; a topic made
again, or a checkpoint older than delete.retention.ms, makes it rebuild (no key comes back)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from outboxkit.kafka import clients
from outboxkit.kafka.catchup import end_offsets
from outboxkit.kv import TOMBSTONE, CompactionSettings, KVStore, KVWriter
from outboxkit.kv.stores.disk import DiskStore
from tests.outboxkit.kv.test_writer import records_of

REPO = Path(__file__).resolve().parents[3]
PARTITIONS = 3


class ReaderProcess:
    def __init__(self, topic: str, path: Path, bootstrap_servers: str, slow: float = 0.0) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.outboxkit.kv.reader_process",
                topic,
                str(path),
                bootstrap_servers,
                "--slow",
                str(slow),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def lines(self) -> Iterator[dict[str, Any]]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            yield orjson.loads(line)
        raise AssertionError(f"the reader process ended with {self.proc.wait()}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def write_history(writer: KVWriter, records: int, keys: int) -> dict[str, Any]:
    """`records` puts and deletes over `keys` keys; returns the model (last word per key)."""
    model: dict[str, Any] = {}
    batch: list[tuple[str, Any]] = []
    for n in range(records):
        key = f"key-{(n * 7919) % keys}"
        value = TOMBSTONE if n % 11 == 0 else {"n": n, "pad": "x" * 60}
        batch.append((key, value))
        if value is TOMBSTONE:
            model.pop(key, None)
        else:
            model[key] = value
        if len(batch) == 5000:
            writer.put_many(batch)
            batch = []
    writer.put_many(batch)
    return model


def fresh_state(bootstrap_servers: str, topic: str) -> dict[str, Any]:
    with KVStore(topic, kafka=bootstrap_servers) as fresh:
        fresh.wait_ready(60)
        return dict(fresh.items())


def offsets_after(
    bootstrap_servers: str, topic: str, positions: dict[int, int], partitions: int = PARTITIONS
) -> int:
    """Offsets between `positions` and the partitions' ends (negative: a position beyond an end)."""
    consumer = clients.consumer(bootstrap_servers, "kv-test-ends")
    try:
        ends = end_offsets(consumer, [(topic, p) for p in range(partitions)])
    finally:
        consumer.close()
    return sum(end - positions.get(p, 0) for (_t, p), end in ends.items())


def restart_on_disk(bootstrap_servers: str, topic: str, path: Path) -> tuple[KVStore, int]:
    """A reader on the disk store left in `path`: (the reader, ready; offsets past its checkpoint)."""
    disk = DiskStore(path)
    saved = disk.checkpoint()
    assert saved is not None and sum(saved.positions.values()) > 0, "the killed reader left a checkpoint"
    tail = offsets_after(bootstrap_servers, topic, dict(saved.positions))
    store = KVStore(topic, kafka=bootstrap_servers, store=disk).start()
    store.wait_ready(60)
    return store, tail


def test_killed_while_loading_it_resumes_from_its_checkpoint(
    bootstrap_servers: str, kv_topic: Callable[[], str], tmp_path: Path
) -> None:
    topic = kv_topic()
    model = write_history(KVWriter(topic, kafka=bootstrap_servers, partitions=PARTITIONS), 40_000, 15_000)
    child = ReaderProcess(topic, tmp_path, bootstrap_servers, slow=0.05)
    try:
        for line in child.lines():
            if "covered" in line and line["covered"] > 0.4 * line["total"]:
                break
        child.kill()  # in the middle of loading
    finally:
        if child.proc.poll() is None:
            child.kill()
    store, tail = restart_on_disk(bootstrap_servers, topic, tmp_path)
    try:
        assert store.loaded_from == "checkpoint"
        assert 0 < tail < 0.7 * 40_000 and store.applied <= tail, "only the tail was read again"
        state = dict(store.items())
    finally:
        store.stop()
    assert state == model == fresh_state(bootstrap_servers, topic)


def test_killed_while_following_it_resumes_from_its_checkpoint(
    bootstrap_servers: str, kv_topic: Callable[[], str], tmp_path: Path
) -> None:
    topic = kv_topic()
    writer = KVWriter(topic, kafka=bootstrap_servers, partitions=PARTITIONS)
    model = write_history(writer, 10_000, 3_000)
    child = ReaderProcess(topic, tmp_path, bootstrap_servers)
    try:
        lines = child.lines()
        for line in lines:
            if line.get("ready"):
                break
        written = 0
        for round_ in range(40):  # updates while it follows; killed after some were applied
            batch = [(f"key-{(round_ * 53 + i) % 3_000}", {"round": round_, "i": i}) for i in range(50)]
            writer.put_many(batch)
            model.update(batch)
            written += len(batch)
            if round_ == 20:
                next(lines)  # it applied something of the live updates
                child.kill()
            time.sleep(0.01)
    finally:
        if child.proc.poll() is None:
            child.kill()
    store, tail = restart_on_disk(bootstrap_servers, topic, tmp_path)
    try:
        assert store.loaded_from == "checkpoint" and store.applied <= tail < written
        state = dict(store.items())
    finally:
        store.stop()
    assert state == model == fresh_state(bootstrap_servers, topic)


def test_a_topic_made_again_is_rebuilt_from_its_start(
    bootstrap_servers: str, kv_topic: Callable[[], str], tmp_path: Path
) -> None:
    topic = kv_topic()
    writer = KVWriter(topic, kafka=bootstrap_servers, partitions=PARTITIONS)
    writer.put_many({f"old-{i}": i for i in range(30)})
    with KVStore(topic, kafka=bootstrap_servers, store=DiskStore(tmp_path)) as store:
        store.wait_ready(30)
        assert len(store) == 30
    admin = clients.admin(bootstrap_servers)
    admin.delete_topics([topic])[topic].result(30)
    deadline = time.monotonic() + 30
    while topic in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.2)
    again = KVWriter(topic, kafka=bootstrap_servers, partitions=PARTITIONS)
    again.put_many({f"new-{i}": i for i in range(90)})  # more records: the old offsets lie inside the log
    with KVStore(topic, kafka=bootstrap_servers, store=DiskStore(tmp_path)) as store:
        store.wait_ready(30)
        assert "deleted and made again" in store.loaded_from
        assert dict(store.items()) == {f"new-{i}": i for i in range(90)}, "no key of the old topic"


def test_a_checkpoint_older_than_delete_retention_is_rebuilt_and_no_key_comes_back(
    bootstrap_servers: str, kv_topic: Callable[[], str], tmp_path: Path
) -> None:
    topic = kv_topic()
    compaction = CompactionSettings(
        segment_ms=200, min_compaction_lag_ms=0, delete_retention_ms=1_000, min_cleanable_dirty_ratio=0.01
    )
    writer = KVWriter(topic, kafka=bootstrap_servers, partitions=1, compaction=compaction)
    writer.put_many({"doomed": "value", **{f"keep-{i}": i for i in range(10)}})
    with KVStore(topic, kafka=bootstrap_servers, store=DiskStore(tmp_path)) as store:
        store.wait_ready(30)
        assert store.get("doomed") == "value"
    writer.delete("doomed")  # after the checkpoint; compaction will drop it and, later, the tombstone
    deadline = time.monotonic() + 60
    while any(key == b"doomed" for key, _v in records_of(bootstrap_servers, topic, 1).values()):
        assert time.monotonic() < deadline, "compaction did not drop the tombstone in time"
        writer.put_many([(f"roll-{i}", TOMBSTONE) for i in range(3)])  # roll segments
        time.sleep(0.5)
    disk = DiskStore(tmp_path)
    saved = disk.checkpoint()
    assert saved is not None and offsets_after(bootstrap_servers, topic, dict(saved.positions), 1) > 0
    with KVStore(topic, kafka=bootstrap_servers, store=disk) as store:
        store.wait_ready(30)
        assert "doomed" not in store, "a deleted key came back"
        assert "older than the topic's delete.retention.ms" in store.loaded_from
        assert dict(store.items()) == {f"keep-{i}": i for i in range(10)}


def test_a_second_process_cannot_open_the_same_disk_store(tmp_path: Path) -> None:
    first = DiskStore(tmp_path)
    try:
        with pytest.raises(Exception, match="in use by another process"):
            DiskStore(tmp_path)
    finally:
        first.close()
    DiskStore(tmp_path).close()
