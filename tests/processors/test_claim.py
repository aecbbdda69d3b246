"""Taking partitions (mode kafka) when a transaction holds the group's committed offsets: the wait
says why (asked of the group coordinator), and a transaction of the instance's own
transactional.id that outlives its timeout (the broker should have aborted it) is ended by
re-initialising the producer, once, after which the partitions are taken."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest
from confluent_kafka import KafkaException, TopicPartition

from outboxkit.kafka import admin, clients, transactions
from outboxkit.kafka.errors import KafkaUnavailableError
from outboxkit.processors import Processor, ProcessorConfig, kafka_mode
from outboxkit.processors.kafka_mode import KafkaProcessorRunner
from tests.services import offsets_held_open


def test_admin_names_the_partitions_whose_offsets_an_open_transaction_holds(
    bootstrap_servers: str, new_topic: Callable[..., str], unique: Callable[[str], str]
) -> None:
    source, group = new_topic("held", partitions=2), unique("held")
    client = clients.admin(bootstrap_servers)
    with offsets_held_open(bootstrap_servers, group, {(source, 1): 4}):
        assert admin.held_offsets(client, group, [(source, 0), (source, 1)]) == [(source, 1)]
    # abort_transaction returns before the coordinator has written the abort's markers: the
    # offsets are free once they are written (asked again, briefly)
    deadline = time.monotonic() + 15
    while (
        held := admin.held_offsets(client, group, [(source, 0), (source, 1)])
    ) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert held == []


def quick_runner(
    bootstrap: str, source: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> KafkaProcessorRunner:
    """A mode-kafka runner (transaction timeout 3 s) with its producer, as `run` makes it; a held
    claim is reported every 2 s and counts as overdue 2 s past the timeout."""
    monkeypatch.setattr(kafka_mode, "HELD_PAST_TIMEOUT_SECONDS", 2.0)
    monkeypatch.setattr(transactions, "WAIT_REPORT_SECONDS", 2.0)
    config = ProcessorConfig(instance_id="one", transaction_timeout_ms=3000)
    runner = KafkaProcessorRunner(Processor(name, [source], config=config), bootstrap)
    runner.producer = runner._new_producer()
    return runner


def test_a_claim_ends_a_transaction_of_its_own_id_held_past_its_timeout(
    bootstrap_servers: str,
    new_topic: Callable[..., str],
    unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A producer of the instance's transactional.id (made after the instance's own, as a
    transaction the broker kept would be) holds the group's offsets with a 120 s timeout, far past
    the instance's 3 s: without the re-initialisation the claim waits until its own timeout."""
    source = new_topic("claim")
    runner = quick_runner(bootstrap_servers, source, unique("claim"), monkeypatch)
    held = clients.transactional_producer(
        bootstrap_servers, runner._transactional_id, transaction_timeout_ms=120_000
    )
    outsider = clients.consumer(bootstrap_servers, runner.processor.group_id)
    member = clients.consumer(bootstrap_servers, runner.processor.group_id)
    try:
        held.begin_transaction()
        offsets = [TopicPartition(source, 0, 9)]
        held.send_offsets_to_transaction(offsets, outsider.consumer_group_metadata(), 30)
        started = time.monotonic()
        with caplog.at_level(logging.INFO, logger="outboxkit"):
            claimed = runner.claim(member, [(source, 0)])
        took = time.monotonic() - started
        assert claimed == {(source, 0): 0}, "the held offsets (9) were aborted, never committed"
        assert 5 <= took <= 30, f"taken after {took:.1f} s"
        said = caplog.text
        assert f"an open transaction holds the committed offsets of [('{source}', 0)]" in said
        assert "re-initialising the transactional producer" in said
        with pytest.raises(KafkaException):  # the holder was fenced by the re-initialisation
            held.commit_transaction(10)
        runner.producer.begin_transaction()  # the new producer goes on
        runner.producer.abort_transaction(10)
    finally:
        member.close()
        outsider.close()


def test_a_claim_held_past_the_timeout_by_another_id_says_where_to_look(
    bootstrap_servers: str,
    new_topic: Callable[..., str],
    unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The re-initialisation does not end another id's transaction: the claim's error at its
    timeout says so, and names the __consumer_offsets partition whose producers to look at."""
    monkeypatch.setattr(kafka_mode, "CLAIM_TIMEOUT_SECONDS", 12.0)
    source = new_topic("claim-other")
    runner = quick_runner(bootstrap_servers, source, unique("claim"), monkeypatch)
    group = runner.processor.group_id
    member = clients.consumer(bootstrap_servers, group)
    try:
        held = offsets_held_open(bootstrap_servers, group, {(source, 0): 9})
        with held, pytest.raises(KafkaUnavailableError) as failed:
            runner.claim(member, [(source, 0)])
        said = str(failed.value)
        assert "past the transaction timeout and not of this instance" in said
        assert f"__consumer_offsets partition {admin.offsets_partition(group, 10)}" in said
    finally:
        member.close()
