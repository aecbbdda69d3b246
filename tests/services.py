"""Where the real services are, and whether they answer."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

DEFAULTS = {
    "OUTBOX_DATABASE_URL": "postgresql://outbox:outbox@127.0.0.1:5432/outbox",
    "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "OUTBOX_CONNECT_URL": "http://127.0.0.1:8083",
}


@dataclass(frozen=True)
class ServiceAddresses:
    database_url: str
    bootstrap_servers: str
    connect_url: str
    stack_dir: Path

    @classmethod
    def discover(cls, env: Mapping[str, str], repo: Path) -> ServiceAddresses:
        """OUTBOX_... variables win; then the stack.env that `stack/stack up` wrote; then defaults."""
        stack_dir = Path(env.get("OUTBOX_STACK_DIR") or repo / ".stack")
        values = dict(DEFAULTS)
        env_file = stack_dir / "stack.env"
        if env_file.exists():
            for line in env_file.read_text().splitlines():
                key, _, value = line.partition("=")
                if key in values:
                    values[key] = value
        values.update({k: env[k] for k in DEFAULTS if env.get(k)})
        return cls(
            database_url=values["OUTBOX_DATABASE_URL"],
            bootstrap_servers=values["OUTBOX_KAFKA_BOOTSTRAP_SERVERS"],
            connect_url=values["OUTBOX_CONNECT_URL"],
            stack_dir=stack_dir,
        )


def probe_postgres(url: str) -> str | None:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as err:
        return str(err).strip()
    return None


def kafka_admin(bootstrap_servers: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap_servers})


def probe_kafka(bootstrap_servers: str) -> str | None:
    from confluent_kafka import KafkaException

    try:
        metadata = kafka_admin(bootstrap_servers).list_topics(timeout=10)
    except KafkaException as err:
        return str(err)
    return None if metadata.brokers else "no broker in metadata"


def probe_connect(url: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{url}/", timeout=5) as resp:
            json.load(resp)
    except (OSError, ValueError) as err:
        return str(err)
    return None


def reader(bootstrap: str, isolation: str, extra: Mapping[str, Any] | None = None) -> Consumer:
    """A consumer for assigned partitions (its group id is never joined or committed to)."""
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            **(extra or {}),
        }
    )


def consume_all(
    bootstrap: str,
    topic: str,
    expected: int,
    *,
    isolation: str = "read_committed",
    timeout: float = 30.0,
) -> list[Message]:
    """Read `topic` from the start until `expected` records arrived or `timeout` passed.

    Partitions are assigned, not subscribed: without group management no rebalance can rewind the
    reader and make a record look duplicated.
    """
    consumer = reader(bootstrap, isolation)
    records: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        partitions = wait_for_partitions(consumer, topic, deadline)
        if partitions is None:
            return records  # the topic was never created: nothing was published
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        while len(records) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            records.append(msg)
        # Linger briefly: anything beyond `expected` is a defect the caller must see.
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                records.append(msg)
    finally:
        consumer.close()
    return records


def read_all(
    bootstrap: str,
    topic: str,
    *,
    isolation: str = "read_committed",
    timeout: float = 60.0,
    settled: bool = False,
) -> list[Message]:
    """Everything `topic` holds now, read to the end of every partition (for read_committed: its
    last stable offset). For counting duplicates, where consume_all's `expected` would only be a
    guess: no time budget that a slow machine could run out of, and no waiting once at the end.

    `settled`: first wait until no transaction is open on the topic (`wait_settled`), so that no
    record, a duplicate least of all, hides behind one. For a topic whose producers have all
    stopped: then nothing can arrive later that a longer wait would have seen."""
    consumer = reader(bootstrap, isolation, {"enable.partition.eof": True})
    records: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        partitions = wait_for_partitions(consumer, topic, deadline)
        if partitions is None:
            return records
        if settled:
            wait_settled(bootstrap, topic, partitions, deadline)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        at_end: set[int] = set()
        while len(at_end) < len(partitions):
            assert time.monotonic() < deadline, f"{topic}: partitions {sorted(at_end)} of {partitions} read"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition() or 0)
                continue
            assert error is None, error
            records.append(msg)
    finally:
        consumer.close()
    return records


def wait_settled(bootstrap: str, topic: str, partitions: list[int], deadline: float) -> None:
    """Until no transaction is open on `topic`: on every partition the last stable offset (the end
    a read_committed reader sees) has reached the high watermark. A transaction left open (a killed
    or fenced producer) settles when its producer's successor or the broker's timeout aborts it."""
    committed, everything = reader(bootstrap, "read_committed"), reader(bootstrap, "read_uncommitted")
    try:
        for partition in partitions:
            tp = TopicPartition(topic, partition)
            while True:
                stable = committed.get_watermark_offsets(tp, timeout=10, cached=False)[1]
                high = everything.get_watermark_offsets(tp, timeout=10, cached=False)[1]
                if stable >= high:
                    break
                assert time.monotonic() < deadline, f"{topic}[{partition}]: a transaction stays open"
                time.sleep(0.2)
    finally:
        committed.close()
        everything.close()


def wait_for_partitions(consumer: Consumer, topic: str, deadline: float) -> list[int] | None:
    """The topic's partition ids once it exists (its first producer may create it later)."""
    while time.monotonic() < deadline:
        metadata = consumer.list_topics(topic, timeout=5).topics.get(topic)
        if metadata is not None and metadata.error is None and metadata.partitions:
            return sorted(metadata.partitions)
        time.sleep(0.2)
    return None


def broker_pid() -> int:
    """The local stack's Kafka broker (`stack/stack status`), the one these tests run against."""
    repo = Path(__file__).resolve().parents[1]
    status = subprocess.run(
        [str(repo / "stack" / "stack"), "status"], capture_output=True, text=True, check=True, cwd=repo
    ).stdout
    found = re.search(r"^kafka\s+up\s+pid=(\d+)", status, re.MULTILINE)
    assert found, f"no running Kafka broker in `stack/stack status`:\n{status}"
    return int(found.group(1))


@contextlib.contextmanager
def broker_paused() -> Iterator[None]:
    """Kafka stops answering (SIGSTOP: a frozen VM, a long GC pause) and wakes up afterwards."""
    pid = broker_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@contextlib.contextmanager
def offsets_held_open(bootstrap: str, group: str, offsets: Mapping[tuple[str, int], int]) -> Iterator[None]:
    """An open transaction (of a producer outside the group) holds `offsets` for `group`: until it
    ends, a read of the group's committed offsets with require_stable waits. Aborted afterwards."""
    from outboxkit.kafka import clients

    producer = clients.transactional_producer(
        bootstrap, f"held-{uuid.uuid4().hex[:8]}", transaction_timeout_ms=120_000
    )
    outsider = Consumer({"bootstrap.servers": bootstrap, "group.id": group})  # never joins
    try:
        producer.begin_transaction()
        listed = [TopicPartition(t, p, n) for (t, p), n in offsets.items()]
        producer.send_offsets_to_transaction(listed, outsider.consumer_group_metadata(), 30)
        yield
    finally:
        producer.abort_transaction(30)
        outsider.close()
