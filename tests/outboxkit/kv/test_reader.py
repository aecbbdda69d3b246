"""KVStore on the real broker: loads to the end it read at start (commit markers, aborted and open
transactions never leave it waiting nor show aborted values), skips bad records, follows,
read-your-writes, change callbacks and snapshots."""

from __future__ import annotations

import gc
import threading
import time
import uuid
from collections.abc import Callable

import pytest

from outboxkit.kafka import clients
from outboxkit.kv import KVStore, KVWriter, Versioned
from outboxkit.kv.errors import NotReadyError, ReaderFailedError


def test_a_transactional_topic_loads_to_its_markers_without_aborted_values(
    bootstrap_servers: str, kv_topic: Callable[[], str]
) -> None:
    topic = kv_topic()
    KVWriter(topic, kafka=bootstrap_servers, partitions=3)  # makes the compacted topic
    producer = clients.transactional_producer(bootstrap_servers, f"{topic}-tx")
    expected: dict[str, bytes] = {}
    for round_, commit in enumerate((True, False, True, False, True)):
        producer.begin_transaction()
        for i in range(20):
            producer.produce(topic, f"{round_}-{i}".encode(), f"key-{i % 12}".encode())
        producer.flush(30)
        if commit:
            producer.commit_transaction(30)
            expected.update({f"key-{i % 12}": f"{round_}-{i}".encode() for i in range(20)})
        else:
            producer.abort_transaction(30)
    # Every partition now ends with a commit marker; one more transaction stays open.
    producer.begin_transaction()
    producer.produce(topic, b"open", b"key-0")
    producer.flush(30)
    progress: list[tuple[int, int]] = []
    store = KVStore(
        topic, kafka=bootstrap_servers, values="bytes", on_progress=lambda c, t: progress.append((c, t))
    )
    try:
        started = time.monotonic()
        store.start().wait_ready(30)
        took = time.monotonic() - started
        assert dict(store.items()) == expected, "committed values only, the last of each key"
        assert not any(v.startswith((b"1-", b"3-")) for _k, v in store.items())
        assert took < 10, f"loaded in {took:.1f} s: it must not wait for a marker or the open transaction"
        assert progress and progress[-1][0] == progress[-1][1] > 0
        assert store.ready and store.load_seconds is not None
    finally:
        producer.abort_transaction(30)
        store.stop()


def test_bad_records_are_counted_and_skipped(bootstrap_servers: str, kv_topic: Callable[[], str]) -> None:
    topic = kv_topic()
    writer = KVWriter(topic, kafka=bootstrap_servers, partitions=1)
    writer.put("good", {"n": 1})
    producer = clients.producer(bootstrap_servers)
    failed: list[object] = []
    # (A record without a key never gets here: a compacted topic refuses it at the broker.)
    producer.produce(topic, b"\xff", b"\xfe\xff", on_delivery=lambda e, _m: failed.append(e))  # key not UTF-8
    producer.produce(topic, b"{not json", b"broken", headers=[("content-type", b"application/json")])
    producer.produce(topic, b"\x00", b"nojson")  # no content type: read as JSON by default
    producer.flush(30)
    assert failed == [None]
    last = writer.put("after", [1])
    store = KVStore(topic, kafka=bootstrap_servers).start()
    try:
        store.wait_ready(30)
        store.wait_for(last, 10)
        assert dict(store.items()) == {"good": {"n": 1}, "after": [1]}
        assert store.skipped == 3 and store.error is None
    finally:
        store.stop()


def test_follows_reads_its_writes_and_reports_changes(
    bootstrap_servers: str, kv_topic: Callable[[], str]
) -> None:
    topic = kv_topic()
    writer = KVWriter(topic, kafka=bootstrap_servers, partitions=2)
    writer.put("flag:a", True)
    seen: list[tuple[str, object, object]] = []

    def changed(key: str, old: Versioned | None, new: Versioned | None) -> None:
        seen.append((key, old and old.value, new and new.value))

    store = KVStore(topic, kafka=bootstrap_servers)
    store.on_change(changed)
    store.on_change(lambda *_: 1 / 0)  # a failing callback is logged, the reader goes on
    with store:
        store.wait_ready(30)
        snapshot = store.items()
        version = writer.put("flag:a", False)
        store.wait_for(version, 10)
        assert store.get("flag:a") is False and "flag:a" in store and len(store) == 1
        entry = store.get_versioned("flag:a")
        assert entry is not None and entry.version == version and entry.timestamp > 0
        gone = writer.delete("flag:a")
        store.wait_for(gone, 10)
        assert "flag:a" not in store and store.get("flag:a", "absent") == "absent" and len(store) == 0
        assert dict(snapshot) == {"flag:a": True}, "a snapshot does not change under its reader"
        assert seen == [("flag:a", None, True), ("flag:a", True, False), ("flag:a", False, None)]
        with pytest.raises(NotReadyError, match="has not applied"):
            store.wait_for((version[0], gone[1] + 1000), timeout=0.3)
        assert store.error is None and store.applied == 3


def test_wait_for_returns_after_the_change_callbacks_of_that_version_ran(
    bootstrap_servers: str, kv_topic: Callable[[], str]
) -> None:
    """Read-your-writes covers what callbacks derive (a cache they invalidate, a count)."""
    topic = kv_topic()
    writer = KVWriter(topic, kafka=bootstrap_servers, partitions=1)
    seen: list[object] = []

    def slow(_key: str, _old: Versioned | None, new: Versioned | None) -> None:
        time.sleep(0.3)
        seen.append(new and new.value)

    with KVStore(topic, kafka=bootstrap_servers) as store:
        store.on_change(slow)
        store.wait_ready(30)
        store.wait_for(writer.put("price", 10), 10)
        assert seen == [10]
        store.wait_for(writer.delete("price"), 10)
        assert seen == [10, None]


def test_a_memory_load_runs_almost_no_garbage_collection(
    bootstrap_servers: str, kv_topic: Callable[[], str]
) -> None:
    """MemoryStore.batch_size: each batch's records are freed before the youngest generation fills."""
    topic = kv_topic()
    producer = clients.producer(bootstrap_servers, {"linger.ms": 20})
    KVWriter(topic, kafka=bootstrap_servers, partitions=2)
    for i in range(20_000):
        producer.produce(topic, b"v" * 100, f"k{i}".encode())
    assert producer.flush(30) == 0
    gc.collect()
    before = gc.get_stats()[0]["collections"]
    with KVStore(topic, kafka=bootstrap_servers, values="bytes") as store:
        store.wait_ready(60)
        collections = gc.get_stats()[0]["collections"] - before
        assert len(store) == 20_000
    assert collections <= 10, f"{collections} collections of the youngest generation during the load"


def test_an_empty_topic_is_ready_at_once_and_then_follows(
    bootstrap_servers: str, kv_topic: Callable[[], str]
) -> None:
    topic = kv_topic()
    writer = KVWriter(topic, kafka=bootstrap_servers, partitions=3)
    with KVStore(topic, kafka=bootstrap_servers) as store:
        store.wait_ready(30)
        assert len(store) == 0
        versions = writer.put_many({f"k{i}": i for i in range(30)})
        for version in versions:
            store.wait_for(version, 10)
        assert dict(store.items()) == {f"k{i}": i for i in range(30)}
        assert store.lag() == {0: 0, 1: 0, 2: 0}


def test_a_missing_topic_fails_the_reader_with_the_reason(bootstrap_servers: str) -> None:
    store = KVStore(f"kv-missing-{uuid.uuid4().hex[:8]}", kafka=bootstrap_servers).start()
    try:
        with pytest.raises(ReaderFailedError, match="not available"):
            store.wait_ready(30)
    finally:
        store.stop()


def test_reads_are_safe_while_it_applies(bootstrap_servers: str, kv_topic: Callable[[], str]) -> None:
    topic = kv_topic()
    writer = KVWriter(topic, kafka=bootstrap_servers, partitions=2)
    with KVStore(topic, kafka=bootstrap_servers) as store:
        store.wait_ready(30)
        stop = threading.Event()
        problems: list[str] = []

        def read() -> None:
            while not stop.is_set():
                snapshot = dict(store.items())
                if any(v != int(k[1:]) for k, v in snapshot.items()):
                    problems.append("wrong value")
                store.get("k1")

        reader = threading.Thread(target=read)
        reader.start()
        last = writer.put_many({f"k{i}": i for i in range(2000)})
        store.wait_for(max(last), 15)
        for version in last:
            store.wait_for(version, 15)
        stop.set()
        reader.join()
        assert not problems and len(store) == 2000
