"""The broker restarts (stop, then start, by the stack's own script) while a processor runs and
about 400 events/s flow in: the processor rides it out, and an independent read_committed read of
its outputs finds every committed input handled exactly once, per key in input order.

The broker is an isolated stack instance (tests/isolated.py), so the shared one stays up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import NewTopic

from outboxkit.kafka.transactions import HUNG_EXIT_STATUS
from tests.consumers.conformance import assert_clean
from tests.consumers.workload import Feed, read_expected, tally
from tests.isolated import IsolatedStack
from tests.processors.conftest import flowing, wait_for
from tests.processors.harness import (
    Processes,
    ProcessorInstance,
    caught_up,
    output_effects,
    processes,
    working,
)
from tests.services import kafka_admin

PARTITIONS = 3
ARGS = ("--transaction-ms", "100")


@pytest.fixture
def isolated() -> Iterator[IsolatedStack]:
    stack = IsolatedStack()
    started = stack.up("kafka")
    assert started.returncode == 0, started.stderr
    yield stack
    stack.remove()


def topics(bootstrap: str, *names: str) -> None:
    admin = kafka_admin(bootstrap)  # held until the futures are done: its end would cancel them
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=PARTITIONS, replication_factor=1) for n in names]
    )
    for future in futures.values():
        future.result(timeout=30)


class Supervisor:
    """Starts the instance again (same identity) when it ended itself because a Kafka call hung
    (outboxkit.kafka.transactions.hang_guard), as systemd or Kubernetes would; any other end fails."""

    def __init__(self, run: Processes, instance: ProcessorInstance) -> None:
        self.run, self.instance, self.restarts = run, instance, 0

    def caught_up(self, bootstrap: str, name: str, topic: str) -> Callable[[], bool]:
        check = caught_up(bootstrap, name, topic, PARTITIONS)

        def supervised() -> bool:
            status = self.instance.exited()
            if status is not None:
                assert status == HUNG_EXIT_STATUS, f"exited with {status}: {self.instance.tail()}"
                assert "the Kafka client hangs" in self.instance.tail(), self.instance.tail()
                self.restarts += 1
                self.instance = self.run.start("restart-1", *ARGS)
            return check()

        return supervised


def test_mode_kafka_rides_out_a_broker_restart_under_load(isolated: IsolatedStack, tmp_path: Path) -> None:
    bootstrap = isolated.bootstrap_servers
    topic, output, dlq = "restart-in", "restart-out", "restart-dlq"
    topics(bootstrap, topic, output, dlq)
    feed = Feed(bootstrap, topic, keys=200, seed=43)
    feed.write(500)
    run = processes(bootstrap, topic, output, dlq, "restart", tmp_path)
    try:
        with flowing(feed, 400):
            instance = run.start("restart-1", *ARGS)
            instance.wait_up()
            wait_for(working(instance), "the instance to take partitions")
            time.sleep(2)  # transactions come and go under load
            stopped = isolated.down()
            assert stopped.returncode == 0, stopped.stderr
            down_at = time.monotonic()
            restarted = isolated.up("kafka")
            assert restarted.returncode == 0, restarted.stderr
            outage = time.monotonic() - down_at
            time.sleep(3)  # and flows on after it
        supervisor = Supervisor(run, instance)
        wait_for(supervisor.caught_up(bootstrap, "restart", topic), "the instance to catch up", timeout=120)
        supervisor.instance.stop()
    finally:
        run.close()
    expected = read_expected(bootstrap, topic)
    found = tally(expected, output_effects(bootstrap, output))
    assert_clean(found)
    print(f"broker down for {outage:.1f} s; {len(expected.events)} inputs; {supervisor.restarts} restarts")
