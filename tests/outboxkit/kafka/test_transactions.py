"""outboxkit.kafka.transactions against the real broker: outputs and a group's offsets commit
together or not at all, and a member the group went on without cannot commit."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, TopicPartition

from outboxkit.kafka import clients, transactions
from outboxkit.kafka.errors import KafkaUnavailableError, StopRequestedError
from outboxkit.kafka.transactions import ProducerFencedError, TransactionAbortedError
from tests.isolated import IsolatedStack
from tests.services import offsets_held_open, read_all


def member(bootstrap: str, group: str, topic: str, **settings: object) -> Consumer:
    consumer = clients.consumer(bootstrap, group, {"session.timeout.ms": 6000, **settings})
    consumer.subscribe([topic])
    deadline = time.monotonic() + 30
    while not consumer.assignment():
        assert time.monotonic() < deadline, "no assignment"
        consumer.poll(0.2)
    return consumer


def test_outputs_and_offsets_commit_together_and_an_abort_keeps_both_out(
    bootstrap_servers: str, new_topic: Callable[..., str]
) -> None:
    source, output = new_topic("txn-in"), new_topic("txn-out")
    group = f"txn-{uuid.uuid4().hex[:8]}"
    producer = clients.transactional_producer(bootstrap_servers, f"txn-{uuid.uuid4().hex[:8]}")
    consumer = member(bootstrap_servers, group, source)
    try:
        transactions.begin(producer)
        producer.produce(output, value=b"aborted")
        producer.flush(10)
        transactions.abort(producer)
        assert transactions.committed_offsets(consumer, [(source, 0)]) == {(source, 0): 0}

        transactions.begin(producer)
        producer.produce(output, value=b"committed")
        transactions.commit(producer, consumer, {(source, 0): 5})
        assert transactions.committed_offsets(consumer, [(source, 0)]) == {(source, 0): 5}
        assert [m.value() for m in read_all(bootstrap_servers, output)] == [b"committed"]
    finally:
        consumer.close()


def test_a_member_the_group_went_on_without_cannot_commit(
    bootstrap_servers: str, new_topic: Callable[..., str]
) -> None:
    source, output = new_topic("zombie-in"), new_topic("zombie-out")
    group = f"zombie-{uuid.uuid4().hex[:8]}"
    producer = clients.transactional_producer(bootstrap_servers, f"zombie-{uuid.uuid4().hex[:8]}")
    zombie = member(bootstrap_servers, group, source)
    stale = zombie.consumer_group_metadata()
    zombie.close()  # left: the group's generation moves on when another member joins
    heir = member(bootstrap_servers, group, source)
    try:
        transactions.begin(producer)
        producer.produce(output, value=b"from the zombie")

        class Stale:
            def consumer_group_metadata(self) -> object:
                return stale

        with pytest.raises(TransactionAbortedError, match="aborted"):
            transactions.commit(producer, Stale(), {(source, 0): 3})  # type: ignore[arg-type]
        assert read_all(bootstrap_servers, output) == []
        found = heir.committed([TopicPartition(source, 0)], timeout=10)
        assert found[0].offset < 0, "the zombie's offsets were not committed"
    finally:
        heir.close()


def test_a_wait_for_offsets_an_open_transaction_holds_ends_when_cancelled(
    bootstrap_servers: str, new_topic: Callable[..., str]
) -> None:
    """require_stable waits while a transaction holds offsets of the group: until the timeout
    without `cancelled`, within a slice of its saying yes with it (a stop does not wait for it)."""
    source = new_topic("held-in")
    group = f"held-{uuid.uuid4().hex[:8]}"
    consumer = clients.consumer(bootstrap_servers, group)
    try:
        with offsets_held_open(bootstrap_servers, group, {(source, 0): 7}):
            started = time.monotonic()
            with pytest.raises(KafkaUnavailableError, match="committed offsets"):
                transactions.committed_offsets(consumer, [(source, 0)], timeout=3)
            assert time.monotonic() - started >= 2.9, "the read did not wait for the open transaction"

            started = time.monotonic()
            asked = started + 1.5
            with pytest.raises(StopRequestedError, match="stop asked"):
                transactions.committed_offsets(
                    consumer, [(source, 0)], timeout=60, cancelled=lambda: time.monotonic() >= asked
                )
            gave_up = time.monotonic() - started
            assert 1.5 <= gave_up <= 1.5 + transactions.WAIT_SLICE_SECONDS + 1, gave_up
        # aborted: nothing of it was committed, and the read answers at once
        assert transactions.committed_offsets(consumer, [(source, 0)], cancelled=lambda: False) == {
            (source, 0): 0
        }
    finally:
        consumer.close()


def test_a_patient_abort_gives_up_after_its_patience_with_a_replaceable_error(
    unique: Callable[[str], str],
) -> None:
    """The broker is away: a patient abort tries for `patience` seconds, not for ever, then says
    the producer may be replaced (a new one of its transactional.id aborts the transaction)."""
    stack = IsolatedStack()
    try:
        assert stack.up("kafka").returncode == 0
        bootstrap = stack.bootstrap_servers
        producer = clients.transactional_producer(bootstrap, unique("patience"), transaction_timeout_ms=9000)
        producer.begin_transaction()
        producer.produce("patience", value=b"x")  # registers a partition with the coordinator
        assert producer.flush(30) == 0
        assert stack.down().returncode == 0
        started = time.monotonic()
        with pytest.raises(ProducerFencedError) as failed:
            transactions.abort(producer, timeout=1, patience=4)
        assert failed.value.replaceable
        assert 4 <= time.monotonic() - started <= 4 + 1 + transactions.HANG_MARGIN_SECONDS
    finally:
        stack.remove()
