"""Mode kafka against kill -9 at random moments and against a paused zombie, judged by an
independent read_committed read of the output topic: every committed input has exactly one
output, per key in input order, and nothing else is there.

CI size: 24 kill rounds while about 400 events/s flow (about a minute).
OUTBOX_PROCESSOR_KILL_ROUNDS=200 runs a longer one.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

from tests.consumers.conformance import assert_clean
from tests.consumers.workload import Feed, flowing, read_expected, tally
from tests.processors.conftest import wait_for
from tests.processors.harness import (
    OpenTransactions,
    caught_up,
    output_effects,
    processes,
    working,
)

ROUNDS = int(os.environ.get("OUTBOX_PROCESSOR_KILL_ROUNDS") or "24")


def test_kill_9_at_random_moments_loses_nothing_and_duplicates_nothing(
    bootstrap_servers: str, new_topic: Callable[..., str], unique: Callable[[str], str], tmp_path: Path
) -> None:
    topic, output = new_topic("chaos-in", partitions=3), new_topic("chaos-out", partitions=3)
    name = unique("chaos")
    feed = Feed(bootstrap_servers, topic, keys=200, seed=29)
    feed.write(2000)
    run = processes(bootstrap_servers, topic, output, new_topic("chaos-dlq"), name, tmp_path)
    chance = random.Random(31)
    try:
        with flowing(feed, 400):
            for _ in range(ROUNDS):
                # Same identity: the same transactional.id, so the new instance fences the old at once.
                instance = run.start("chaos-1", "--transaction-ms", str(chance.choice([20, 100, 300])))
                instance.wait_up()
                time.sleep(chance.uniform(0.1, 1.0))
                assert instance.exited() is None, instance.tail()
                instance.kill()
        last = run.start("chaos-1")
        wait_for(caught_up(bootstrap_servers, name, topic, 3), "the last instance to catch up", timeout=120)
        last.stop()
    finally:
        run.close()
    expected = read_expected(bootstrap_servers, topic)
    found = tally(expected, output_effects(bootstrap_servers, output))
    assert_clean(found)
    assert len(expected.events) > 2000 + ROUNDS * 100, "records flowed while the instances were killed"


def test_a_paused_zombie_is_fenced_and_its_outputs_never_show(
    bootstrap_servers: str, new_topic: Callable[..., str], unique: Callable[[str], str], tmp_path: Path
) -> None:
    """SIGSTOP an instance inside its transactions, let another take over past the zombie's session
    (6 s) and transaction (10 s) timeouts, then SIGCONT it: whatever it goes on to do, nothing it
    had open becomes visible, and nothing is lost or doubled."""
    topic, output = new_topic("zombie-in", partitions=3), new_topic("zombie-out", partitions=3)
    name = unique("zombie")
    feed = Feed(bootstrap_servers, topic, keys=100, seed=37)
    feed.write(500)
    run = processes(bootstrap_servers, topic, output, new_topic("zombie-dlq"), name, tmp_path)
    try:
        with flowing(feed, 400):
            zombie = run.start(None, "--transaction-ms", "1000")
            zombie.wait_up()
            wait_for(working(zombie), "the first instance to take partitions")
            open_transactions = OpenTransactions(bootstrap_servers, output, 3)
            try:  # paused inside a transaction that holds outputs
                wait_for(open_transactions, "the first instance to open a transaction with outputs")
            finally:
                open_transactions.close()
            zombie.process.send_signal(signal.SIGSTOP)
            stopped = time.monotonic()
            heir = run.start(None)
            heir.wait_up()
            wait_for(working(heir), "the second instance to take the partitions over", timeout=60)
            time.sleep(max(0.0, stopped + 12 - time.monotonic()))  # past both timeouts
            zombie.process.send_signal(signal.SIGCONT)
            time.sleep(5)
        wait_for(caught_up(bootstrap_servers, name, topic, 3), "the instances to catch up", timeout=120)
        heir.stop()
        if zombie.exited() is None:  # it rejoined as a new member
            zombie.stop()
        else:  # its producer was fenced: it says so and exits 1, without a traceback
            assert zombie.exited() == 1, zombie.tail()
            assert "fenced" in zombie.tail() and "Traceback" not in zombie.tail(), zombie.tail()
    finally:
        run.close()
    expected = read_expected(bootstrap_servers, topic)
    found = tally(expected, output_effects(bootstrap_servers, output))
    assert_clean(found)
