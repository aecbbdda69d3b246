"""What a following reader meets on the real broker: partitions added to its topic (CreatePartitions)
are followed from their beginning; Kafka going away (its broker stopped with SIGSTOP) leaves the
reads working and is reported (the reader, its metric, its status, `outbox kv status`) until Kafka
answers again and the updates flow on."""

from __future__ import annotations

import time
from collections.abc import Callable

from click.testing import CliRunner
from confluent_kafka.admin import NewPartitions
from prometheus_client import generate_latest

from outboxkit.cli import main
from outboxkit.kv import KVStore, KVWriter
from outboxkit.kv.metrics import KVMetrics
from outboxkit.kv.status import KVStatusSource
from tests.services import broker_paused, kafka_admin


def eventually(done: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until `done()`; fails after `timeout`."""
    began = time.monotonic()
    while not done():
        assert time.monotonic() - began < timeout, f"not within {timeout} s: {what}"
        time.sleep(0.05)
    return time.monotonic() - began


def test_partitions_added_after_start_are_followed_from_their_beginning(
    bootstrap_servers: str, kv_topic: Callable[[], str]
) -> None:
    topic = kv_topic()
    KVWriter(topic, kafka=bootstrap_servers, partitions=1).put("before", "one partition")
    with KVStore(topic, kafka=bootstrap_servers, partition_check_seconds=1) as reader:
        reader.wait_ready(30)
        assert set(reader.positions) == {0}
        admin = kafka_admin(bootstrap_servers)
        admin.create_partitions([NewPartitions(topic, 3)])[topic].result(30)
        # a new writer (its producer knows the 3 partitions), at once: before the reader's next look
        versions = KVWriter(topic, kafka=bootstrap_servers, create=False).put_many(
            {f"k{n}": n for n in range(40)}
        )
        assert {p for p, _o in versions} == {0, 1, 2}, f"the writer did not use the new ones: {versions}"
        for version in versions:
            reader.wait_for(version, 30)
        assert {f"k{n}": reader.get(f"k{n}") for n in range(40)} == {f"k{n}": n for n in range(40)}
        assert reader.get("before") == "one partition"
        assert set(reader.positions) == {0, 1, 2} and set(reader.lag()) == {0, 1, 2}
        assert sum(reader.lag().values()) == 0


def test_reads_go_on_while_kafka_is_away_which_is_reported_until_it_is_back(
    bootstrap_servers: str, kv_topic: Callable[[], str]
) -> None:
    topic = kv_topic()
    writer = KVWriter(topic, kafka=bootstrap_servers, partitions=2)
    writer.put_many({f"site:{n}": {"n": n} for n in range(20)})
    cli = CliRunner()
    env = {"OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers}
    with KVStore(topic, kafka=bootstrap_servers, partition_check_seconds=1) as reader:
        metrics = KVMetrics(reader)
        reader.wait_ready(30)
        reachable = f'outbox_kv_kafka_reachable{{topic="{topic}"}}'
        assert reader.kafka_reachable and f"{reachable} 1.0" in generate_latest(metrics.registry).decode()
        with broker_paused():
            paused_at = time.time()
            eventually(lambda: not reader.kafka_reachable, 15, "the reader notices that Kafka is away")
            assert reader.get("site:3") == {"n": 3} and len(reader) == 20, "reads go on"
            assert reader.unreachable_since is not None and reader.unreachable_since >= paused_at - 1
            assert reader.kafka_problem, reader.kafka_problem
            assert f"{reachable} 0.0" in generate_latest(metrics.registry).decode()
            began = time.monotonic()
            status = KVStatusSource(topic, bootstrap_servers, reader=reader).read()
            assert time.monotonic() - began < 1, "the reader knows: the status does not wait for Kafka"
            assert status.kafka_problem == reader.kafka_problem and status.keys == 20
            assert status.to_json()["kafka_reachable"] is False and status.reader["kafka_reachable"] is False
            assert "KAFKA UNREACHABLE since" in status.line() and "reads go on" in status.line()
            assert [(p.partition, p.lag) for p in status.partitions] == [(0, 0), (1, 0)]
            command = cli.invoke(main, ["kv", "status", topic, "--timeout", "1"], env=env)
            assert command.exit_code == 1, command.output
            assert "KAFKA UNREACHABLE" in command.output and "cannot read the metadata" in command.output
        version = writer.put("site:3", {"n": "back"})
        reader.wait_for(version, 60)
        assert reader.get("site:3") == {"n": "back"}, "updates flow again"
        eventually(lambda: reader.kafka_reachable, 15, "the reader says Kafka is back")
        assert reader.unreachable_since is None and reader.kafka_problem is None
        assert f"{reachable} 1.0" in generate_latest(metrics.registry).decode()
        status = KVStatusSource(topic, bootstrap_servers, reader=reader).read()
        assert status.kafka_problem is None and "UNREACHABLE" not in status.line()
        assert status.total_lag == 0
    command = cli.invoke(main, ["kv", "status", topic], env=env)
    assert command.exit_code == 0 and "UNREACHABLE" not in command.output, command.output
