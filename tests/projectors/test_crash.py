"""kill -9 a projector process while it applies batches, several times: nothing lost, nothing twice."""

from __future__ import annotations

import random
import signal
import subprocess
from collections.abc import Callable

from sqlalchemy import Engine

from outboxkit.examples.sites.read_model import all_summaries
from tests.projectors.conftest import SitesTopic, applied_counts, projector_process, stored_total, wait_until

EVENTS = 6000
ROUNDS = 4
REFERENCE = "tests.projectors.audited:from_environment"


def test_kill_9_mid_batch_loses_nothing_and_applies_nothing_twice(
    audited_db: Engine,
    projector_db: str,
    bootstrap_servers: str,
    sites_topic: SitesTopic,
    unique: Callable[[str], str],
) -> None:
    topic, history = sites_topic("sites-crash", partitions=3, events=EVENTS, sites=300, seed=7)
    name = unique("crash")
    env = {"TEST_TOPIC": topic, "TEST_PROJECTOR": name, "TEST_BATCH_SIZE": "50"}
    chance = random.Random(11)

    def start() -> subprocess.Popen[bytes]:
        # Static membership: the restarted instance takes its partitions back without a session timeout.
        return projector_process(REFERENCE, projector_db, bootstrap_servers, env, "--instance-id", "crash-1")

    for _ in range(ROUNDS):
        # Kill at a random point once the process is applying: batches of 50 records follow each
        # other back to back, so the kill nearly always lands inside a batch's transaction.
        target = stored_total(audited_db, name) + chance.randrange(50, 500)
        process = start()
        try:
            wait_until(lambda t=target: stored_total(audited_db, name) >= t, timeout=60, what="progress")
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(30)
        assert stored_total(audited_db, name) < EVENTS, "the rounds ended after the last record: slow it down"

    process = start()
    try:
        wait_until(lambda: stored_total(audited_db, name) == EVENTS, timeout=90, what="all records")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert applied_counts(audited_db, name) == (EVENTS, EVENTS)
    with audited_db.connect() as conn:
        assert all_summaries(conn) == history.expected
