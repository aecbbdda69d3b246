"""Three instances in one group while events keep coming; instances start, stop and die, forcing
rebalances: every event is applied exactly once and the read model is exact."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine

from outboxkit.examples.sites.events import emit
from outboxkit.examples.sites.read_model import all_summaries
from tests.projectors.conftest import SitesTopic, applied_counts, projector_process, stored_total, wait_until

EVENTS = 6000
REFERENCE = "tests.projectors.audited:from_environment"


def test_rebalances_neither_double_apply_nor_lose_events(
    audited_db: Engine,
    projector_db: str,
    bootstrap_servers: str,
    sites_topic: SitesTopic,
    unique: Callable[[str], str],
) -> None:
    # The first chunk is on the topic before the instances start; the rest arrives while they change.
    topic, history = sites_topic("sites-rebalance", partitions=6, events=EVENTS // 12, sites=400, seed=5)
    name = unique("rebalance")
    chunks = [history.generate(EVENTS // 12, sites=400) for _ in range(11)]
    env = {"TEST_TOPIC": topic, "TEST_PROJECTOR": name, "TEST_BATCH_SIZE": "50"}

    def producer() -> None:
        for chunk in chunks:
            emit(bootstrap_servers, topic, chunk)
            time.sleep(0.5)

    feeding = threading.Thread(target=producer)
    feeding.start()
    instances: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        instances.append(projector_process(REFERENCE, projector_db, bootstrap_servers, env))
        return instances[-1]

    def progressed() -> None:
        before = stored_total(audited_db, name)
        wait_until(lambda: stored_total(audited_db, name) > before, timeout=30, what="progress")

    try:
        a = start()
        progressed()
        b = start()
        time.sleep(1.5)
        c = start()
        time.sleep(1.5)
        progressed()
        b.send_signal(signal.SIGTERM)  # leaves the group: the others take its partitions over
        assert b.wait(30) == 0
        progressed()
        d = start()
        time.sleep(1.5)
        c.send_signal(signal.SIGKILL)  # dies: its partitions move after the session timeout
        c.wait(30)
        progressed()
        feeding.join(60)
        wait_until(lambda: stored_total(audited_db, name) == EVENTS, timeout=90, what="all records")
        for survivor in (a, d):
            survivor.send_signal(signal.SIGTERM)
            assert survivor.wait(30) == 0
    finally:
        for process in instances:
            if process.poll() is None:
                process.kill()
                process.wait(30)
        feeding.join(60)

    assert applied_counts(audited_db, name) == (EVENTS, EVENTS)
    with audited_db.connect() as conn:
        assert all_summaries(conn) == history.expected
        pids = conn.exec_driver_sql(
            "SELECT count(DISTINCT pid) FROM applied_log WHERE projector = %(p)s", {"p": name}
        )
        assert pids.scalar_one() >= 2, "the instances did not share the work"
