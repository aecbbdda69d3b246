"""The broker of stack/ does what the toolkit relies on: plain, idempotent and transactional produce,
read_committed consumption, and log compaction; `stack/stack kafka-tool` runs Kafka's own tools."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

from confluent_kafka import Producer

from tests.conftest import REPO
from tests.services import consume_all


def test_produce_consume_roundtrip(bootstrap_servers: str, new_topic: Callable[..., str]) -> None:
    topic = new_topic("roundtrip")
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    producer.produce(topic, key=b"k1", value=b"hello", headers=[("ce_id", b"1")])
    assert producer.flush(30) == 0

    [msg] = consume_all(bootstrap_servers, topic, 1)
    assert (msg.key(), msg.value(), msg.headers()) == (b"k1", b"hello", [("ce_id", b"1")])


def test_idempotent_producer_keeps_order(bootstrap_servers: str, new_topic: Callable[..., str]) -> None:
    topic = new_topic("idempotent")
    producer = Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
        }
    )
    errors: list[object] = []
    for i in range(500):
        producer.produce(
            topic,
            key=b"one-key",
            value=str(i).encode(),
            on_delivery=lambda err, _msg: errors.append(err) if err else None,
        )
    assert producer.flush(30) == 0
    assert errors == []

    values = [int(m.value()) for m in consume_all(bootstrap_servers, topic, 500)]
    assert values == list(range(500))


def test_transactions_commit_and_abort(bootstrap_servers: str, new_topic: Callable[..., str]) -> None:
    topic = new_topic("tx")
    producer = Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "transactional.id": f"test-tx-{uuid.uuid4().hex[:8]}",
        }
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"committed-1")
    producer.produce(topic, key=b"k", value=b"committed-2")
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"aborted")
    producer.flush(30)  # the aborted record really reaches the log before the abort
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"committed-3")
    producer.commit_transaction(30)

    committed = [m.value() for m in consume_all(bootstrap_servers, topic, 3)]
    assert committed == [b"committed-1", b"committed-2", b"committed-3"]
    # read_uncommitted sees the aborted record too: proof that it was written and then filtered.
    everything = [m.value() for m in consume_all(bootstrap_servers, topic, 4, isolation="read_uncommitted")]
    assert b"aborted" in everything


def test_compacted_topic_keeps_latest_value_per_key(
    bootstrap_servers: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(
        "compact",
        config={
            "cleanup.policy": "compact",
            "segment.ms": "200",  # roll segments quickly: the active segment is never compacted
            "min.cleanable.dirty.ratio": "0.01",
            "min.compaction.lag.ms": "0",
            "delete.retention.ms": "100",
        },
    )
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    keys = [f"key-{k}" for k in range(5)]
    for round_no in range(40):
        for key in keys:
            producer.produce(topic, key=key.encode(), value=f"{key}@{round_no}".encode())
    producer.flush(30)

    deadline = time.monotonic() + 90
    while True:
        # New writes after segment.ms roll the segment, making the old ones cleanable.
        time.sleep(1.0)
        producer.produce(topic, key=b"roller", value=b"x")
        producer.flush(30)
        records = consume_all(bootstrap_servers, topic, 10_000, timeout=3)
        latest = {m.key(): m.value() for m in records}
        produced_for_keys = [m for m in records if m.key() != b"roller"]
        if len(produced_for_keys) < 200 or time.monotonic() > deadline:
            break
    assert len(produced_for_keys) < 200, "the log cleaner never compacted the topic"
    for key in keys:
        assert latest[key.encode()] == f"{key}@39".encode()


def test_kafka_tool_runs_kafkas_own_tools_against_the_broker(bootstrap_servers: str) -> None:
    """`stack/stack kafka-tool transactions list` lists the broker's transactional ids (one is made
    here first); an unknown tool is refused with the names there are."""
    transactional_id = f"tool-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": bootstrap_servers, "transactional.id": transactional_id})
    producer.init_transactions(30)
    stack = [sys.executable, str(REPO / "stack" / "stack"), "kafka-tool"]
    env = dict(os.environ)
    listed = subprocess.run(
        [*stack, "transactions", "list"], capture_output=True, text=True, env=env, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    assert "TransactionalId" in listed.stdout and transactional_id in listed.stdout
    unknown = subprocess.run([*stack, "nope"], capture_output=True, text=True, env=env, timeout=60)
    assert unknown.returncode == 2 and "transactions" in unknown.stderr
