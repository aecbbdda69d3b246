"""A projector daemon stops promptly on SIGTERM while a handler is being retried (issue 13 item 3),
and loses nothing: the record being retried, and those after it, stay below the stored offset."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from tests.daemons import json_log
from tests.projectors.conftest import SitesTopic, projector_process, stored_total, wait_until

REFERENCE = "tests.projectors.failing_target:from_environment"
FAIL_FROM = 10


def test_sigterm_during_retries_stops_at_once_and_keeps_the_unapplied_records(
    engine: Engine,
    projector_db: str,
    bootstrap_servers: str,
    sites_topic: SitesTopic,
    unique: Callable[[str], str],
    tmp_path: Path,
) -> None:
    # 40 records, 30 of them failing: 3 retries 5 s apart each, about 7.5 min before the fix.
    topic, _ = sites_topic("sites-sigterm", partitions=1, events=40, sites=5, seed=13)
    name, log = unique("sigterm"), tmp_path / "projector.log"
    env = {"FAILING_TOPIC": topic, "FAILING_NAME": name, "FAILING_FROM": str(FAIL_FROM)}
    proc = projector_process(REFERENCE, projector_db, bootstrap_servers, env, log=log)
    try:
        wait_until(
            lambda: "(attempt 1)" in log.read_text(), timeout=60, what="the first retry of a failing record"
        )
        time.sleep(0.5)  # inside the 5 s back-off
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, log.read_text()
    assert took < 4.0, f"stopped {took:.1f} s after SIGTERM"
    # Nothing skipped: the stored offset is the first failing record's, so the next run retries it.
    assert stored_total(engine, name) == FAIL_FROM
    messages = [e["message"] for e in json_log(log.read_text())]
    assert not any(m.startswith("dead-lettered") for m in messages), messages
    assert messages[-1] == "projector stopped"
