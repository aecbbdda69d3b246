"""kill -9 a projector process while it applies batches, several times: nothing lost, nothing twice."""

from __future__ import annotations

import random
import signal
from collections.abc import Callable

from sqlalchemy import Engine

from examples.sites.events import SitesHistory, emit
from examples.sites.read_model import all_summaries
from tests.projectors.conftest import applied_counts, projector_process, stored_total, wait_until

EVENTS = 6000
ROUNDS = 4


def test_kill_9_mid_batch_loses_nothing_and_applies_nothing_twice(
    audited_db: Engine,
    projector_db: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
    unique: Callable[[str], str],
) -> None:
    topic = new_topic("sites-crash", partitions=3)
    name = unique("crash")
    history = SitesHistory(seed=7)
    emit(bootstrap_servers, topic, history.generate(EVENTS, sites=300))
    env = {"TEST_TOPIC": topic, "TEST_PROJECTOR": name, "TEST_BATCH_SIZE": "50"}
    chance = random.Random(11)
    kills = 0
    for _ in range(ROUNDS):
        before = stored_total(audited_db, name)
        # Static membership: the restarted instance takes its partitions back without a session timeout.
        process = projector_process(
            "tests.projectors.audited:from_environment",
            projector_db,
            bootstrap_servers,
            env,
            "--instance-id",
            "crash-1",
        )
        try:
            wait_until(lambda b=before: stored_total(audited_db, name) > b, timeout=60, what="progress")
            wait_until(
                lambda b=before: stored_total(audited_db, name) > b + chance.randrange(100, 900),
                timeout=30,
                what="more progress",
            )
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(30)
        kills += 1
        assert stored_total(audited_db, name) < EVENTS, "the rounds ended after the last record: slow it down"

    process = projector_process(
        "tests.projectors.audited:from_environment",
        projector_db,
        bootstrap_servers,
        env,
        "--instance-id",
        "crash-1",
    )
    try:
        wait_until(lambda: stored_total(audited_db, name) == EVENTS, timeout=90, what="all records")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert kills == ROUNDS
    assert applied_counts(audited_db, name) == (EVENTS, EVENTS)
    with audited_db.connect() as conn:
        assert all_summaries(conn) == history.expected
