"""outboxkit.kafka.group against the real broker: the loop's rebalance callbacks at its edges."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence

import pytest
from confluent_kafka import Consumer, Message

from outboxkit.kafka import clients, transactions
from outboxkit.kafka.group import GROUP_SETTINGS, GroupConsumer
from outboxkit.kafka.records import Partition

MEMBER_SETTINGS = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 300}


class KafkaPositions:
    """Positions in Kafka's committed offsets, claimed as mode `kafka` claims them."""

    def __init__(self) -> None:
        self.claims: list[tuple[float, list[Partition]]] = []

    def claim(self, consumer: Consumer, partitions: Sequence[Partition]) -> dict[Partition, int]:
        self.claims.append((time.monotonic(), list(partitions)))
        return transactions.committed_offsets(consumer, partitions, timeout=30)

    def release(self, consumer: Consumer, partitions: Sequence[Partition]) -> None:
        pass

    def lose(self, consumer: Consumer, partitions: Sequence[Partition]) -> None:
        pass


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} in {timeout} s"
        time.sleep(0.05)


def test_partitions_assigned_while_the_member_closes_are_not_claimed_and_close_returns(
    bootstrap_servers: str, new_topic: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    """A member that leaves while an assignment is on its way gets that assignment inside
    close(). Claiming it there (a committed-offsets read) blocked until its timeout: the broker
    does not answer a closing consumer. It is left unclaimed: nothing of it is ever handed over."""
    topic = new_topic("group-close", partitions=6)
    group = f"group-close-{uuid.uuid4().hex[:8]}"
    positions = KafkaPositions()
    caplog.set_level(logging.INFO, logger="outboxkit.kafka.group")
    member = GroupConsumer(bootstrap_servers, group, [topic], positions, settings=MEMBER_SETTINGS)
    stop, pause = threading.Event(), threading.Event()
    paused_at: list[float] = []

    def turn() -> None:
        if pause.is_set():  # not consuming: what the group sends meanwhile queues up for close()
            paused_at.append(time.monotonic())
            time.sleep(3)
            stop.set()

    handled: list[Message] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            member.run(stop, handled.extend, on_turn=turn)
        except BaseException as err:
            errors.append(err)

    runner = threading.Thread(target=run, name="member")
    runner.start()
    other = None
    try:
        wait_for(lambda: len(member.positions) == 6, "assignment of all six partitions")
        other = clients.consumer(bootstrap_servers, group, {**MEMBER_SETTINGS, **GROUP_SETTINGS})
        other.subscribe([topic])

        def shared() -> bool:
            other.poll(0.1)  # a member that does not poll never completes its rebalance
            return bool(other.assignment()) and len(member.positions) + len(other.assignment()) == 6

        wait_for(shared, "the partitions shared by both members")
        pause.set()
        wait_for(lambda: bool(paused_at), "the member to stop consuming")
        other.close()  # leaves: its partitions go back to the paused member, which closes next
        other = None
        runner.join(20)
        assert not runner.is_alive(), "run() did not return within 20 s of its stop: close() hangs"
        assert errors == []
        leaving = [partitions for at, partitions in positions.claims if at >= paused_at[0]]
        assert leaving == [], f"partitions claimed after the member stopped consuming: {leaving}"
        assert handled == []
        inside_close = [r.message for r in caplog.records if "while leaving the group" in r.message]
        assert inside_close, "the case did not happen: no assignment arrived inside close()"
    finally:
        stop.set()
        if other is not None:
            other.close()
        runner.join(60)
