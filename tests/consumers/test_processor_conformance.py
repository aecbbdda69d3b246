"""Processors (mode kafka) run the consumer conformance suite (tests/consumers/conformance.py):
each instance is an `outbox processor run tests.processors.target:from_environment` process, and
what it did is read from its output topic (read_committed), each output naming its input."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from confluent_kafka import Consumer, Message, TopicPartition
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from outbox import OutboxSettings, migrations
from outbox.schema import TABLE
from outboxkit.processors.dead_letters import dead_letter_id
from outboxkit.processors.status import ProcessorStatusSource
from relay.polling import PollingRelay
from relay.settings import RelaySettings
from tests.consumers.conformance import ComponentFactory, ConsumerConformance, Inputs
from tests.consumers.workload import Effects, InputRecord
from tests.processors import target
from tests.processors.conftest import wait_for
from tests.processors.harness import (
    OpenTransactions,
    Processes,
    ProcessorInstance,
    committed_positions,
    database_effects,
    output_effects,
    stored_positions,
)


@dataclass
class KafkaProcessorUnderTest:
    inputs: Inputs
    output: str
    bootstrap: str
    processes: Processes
    open_transactions: OpenTransactions
    partitions: int

    @property
    def group(self) -> str:
        return f"outboxkit-processor-{self.inputs.name}"

    def start(self, identity: str | None = None) -> ProcessorInstance:
        return self.processes.start(identity, "--transaction-records", str(self.inputs.batch_size))

    def positions(self) -> dict[int, int]:
        return committed_positions(self.bootstrap, self.group, self.inputs.topic, self.partitions)

    def effects(self) -> Effects:
        # A killed instance without a stable transactional.id leaves its transaction open until the
        # broker aborts it (transaction timeout, 10 s here): until then read_committed readers of
        # the outputs stop at it, and a read now would miss later committed outputs. (While
        # instances run, their own transactions are open: the caller only looks for progress.)
        stopped = all(i.exited() is not None for i in self.processes.instances)
        deadline = time.monotonic() + 30
        while stopped and self.open_transactions() and time.monotonic() < deadline:
            time.sleep(0.2)
        return output_effects(self.bootstrap, self.output)

    def rewind(self) -> None:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group})
        try:
            zero = [TopicPartition(self.inputs.topic, p, 0) for p in range(self.partitions)]
            consumer.commit(offsets=zero, asynchronous=False)
        finally:
            consumer.close()

    def in_batch(self, instance: ProcessorInstance) -> bool:
        return self.open_transactions()

    def lag(self) -> dict[int, int]:
        definition = target.build(
            self.inputs.name, self.inputs.topic, self.output, self.inputs.dead_letter_topic
        )
        return {
            p.partition: p.lag for p in ProcessorStatusSource(definition, self.bootstrap).read().partitions
        }

    def publish_dead_letters(self) -> None:
        """Produced in the processor's transactions."""

    def check_dead_letter(self, letter: Message, record: InputRecord) -> None:
        headers = letter.headers() or []
        assert headers[: len(record.headers)] == list(record.headers), "the original headers come first"
        check_reasons(dict(headers), self.inputs, record)

    def close(self) -> None:
        self.processes.close()
        self.open_transactions.close()


class TestKafkaProcessor(ConsumerConformance):
    dedupes_event_ids = False
    """A republished input (same ce_id, new offset) is handled again; its outputs carry the same
    derived ce_ids, so a reader deduplicating by ce_id sees one (the replay case counts on it)."""

    @pytest.fixture
    def component(
        self, bootstrap_servers: str, new_topic: Callable[..., str], tmp_path: Path
    ) -> Iterator[ComponentFactory]:
        def make(inputs: Inputs) -> KafkaProcessorUnderTest:
            output = new_topic("conformance-output", partitions=3)
            partitions = _partitions(bootstrap_servers, inputs.topic)
            env = {
                "PROCESSOR_NAME": inputs.name,
                "PROCESSOR_TOPIC": inputs.topic,
                "PROCESSOR_OUTPUT": output,
                "PROCESSOR_DLQ": inputs.dead_letter_topic,
            }
            return KafkaProcessorUnderTest(
                inputs,
                output,
                bootstrap_servers,
                Processes(bootstrap_servers, env, tmp_path),
                OpenTransactions(bootstrap_servers, output, 3),
                partitions,
            )

        yield make


def check_reasons(found: dict[str, bytes], inputs: Inputs, record: InputRecord) -> None:
    """The reason headers both modes put on a dead letter."""
    assert found["dlq_topic"] == inputs.topic.encode()
    assert (found["dlq_partition"], found["dlq_offset"]) == (b"%d" % record.partition, b"%d" % record.offset)
    assert found["dlq_processor"] == inputs.name.encode()
    if record.seq is None:
        assert b"UndecodableRecordError" in found["dlq_exception"]
        assert found["dlq_attempts"] == b"1"
    else:
        assert found["dlq_exception"] == b"tests.processors.target.PoisonedEventError"
        assert found["dlq_attempts"] == b"2"


def _partitions(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "partitions"})
    try:
        return len(consumer.list_topics(topic, timeout=30).topics[topic].partitions)
    finally:
        consumer.close()


@dataclass
class DatabaseProcessorUnderTest:
    inputs: Inputs
    output: str
    engine: Engine
    processes: Processes
    bootstrap: str

    def start(self, identity: str | None = None) -> ProcessorInstance:
        return self.processes.start(identity, "--transaction-records", str(self.inputs.batch_size))

    def positions(self) -> dict[int, int]:
        return stored_positions(self.engine, self.inputs.name, self.inputs.topic)

    def effects(self) -> Effects:
        return database_effects(self.engine, self.inputs.name)

    def rewind(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE processor_offsets SET next_offset = 0 WHERE processor = :p"),
                {"p": self.inputs.name},
            )

    def in_batch(self, instance: ProcessorInstance) -> bool:
        # A batch's transaction locks its offset rows first, which gives it a transaction id.
        query = (
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = :a "
            "AND backend_xid IS NOT NULL)"
        )
        with self.engine.connect() as conn:
            return bool(conn.execute(sa.text(query), {"a": self.inputs.name}).scalar_one())

    def lag(self) -> dict[int, int]:
        definition = target.build(
            self.inputs.name, self.inputs.topic, self.output, self.inputs.dead_letter_topic, mode="database"
        )
        source = ProcessorStatusSource(definition, self.bootstrap, database_url=self.processes.database_url)
        return {p.partition: p.lag for p in source.read().partitions}

    def publish_dead_letters(self) -> None:
        """The dead letters are in the outbox (in the commits that moved past their inputs): a
        polling relay sends them, and whatever else the outbox holds."""
        waiting = sa.text(f"SELECT count(*) FROM {TABLE} WHERE topic = :t AND published_at IS NULL")
        with self.engine.connect() as conn:
            assert conn.execute(waiting, {"t": self.inputs.dead_letter_topic}).scalar_one() > 0
        settings = OutboxSettings(
            database_url=self.processes.database_url, kafka_bootstrap_servers=self.bootstrap
        )
        relay = PollingRelay(
            settings, RelaySettings(group=f"{self.inputs.name}-relay", metrics_port=0, poll_interval=0.1)
        )
        thread = threading.Thread(target=relay.run, daemon=True)
        thread.start()
        try:
            with self.engine.connect() as conn:
                wait_for(
                    lambda: conn.execute(waiting, {"t": self.inputs.dead_letter_topic}).scalar_one() == 0,
                    "the relay to publish the dead letters",
                    60,
                )
        finally:
            relay.stop()
            thread.join(30)

    def check_dead_letter(self, letter: Message, record: InputRecord) -> None:
        """The record in an envelope of its own (outboxkit.processors.dead_letters): its headers
        under their names, those of its envelope as dlq_ce_*."""
        found = dict(letter.headers() or [])
        for name, value in record.headers:
            assert found[f"dlq_{name}" if name.startswith("ce_") else name] == value, name
        place = (self.inputs.name, self.inputs.topic, record.partition, record.offset)
        assert found["ce_id"] == str(dead_letter_id(*place)).encode()
        check_reasons(found, self.inputs, record)

    def close(self) -> None:
        self.processes.close()


class TestDatabaseProcessor(ConsumerConformance):
    dedupes_event_ids = False

    @pytest.fixture
    def component(
        self, conformance_db: str, bootstrap_servers: str, tmp_path: Path
    ) -> Iterator[ComponentFactory]:
        engine = create_engine(migrations.sqlalchemy_url(conformance_db), pool_pre_ping=True)
        with engine.begin() as conn:
            target.metadata.create_all(conn)  # the test processor's table: no revision of the toolkit's

        def make(inputs: Inputs) -> DatabaseProcessorUnderTest:
            env = {
                "PROCESSOR_NAME": inputs.name,
                "PROCESSOR_MODE": "database",
                "PROCESSOR_TOPIC": inputs.topic,
                "PROCESSOR_OUTPUT": "processed",
                "PROCESSOR_DLQ": inputs.dead_letter_topic,
            }
            url = make_url(conformance_db).update_query_dict({"application_name": inputs.name})
            processes = Processes(bootstrap_servers, env, tmp_path, url.render_as_string(hide_password=False))
            return DatabaseProcessorUnderTest(inputs, "processed", engine, processes, bootstrap_servers)

        yield make
        engine.dispose()
