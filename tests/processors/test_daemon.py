"""`outbox processor run` as a daemon: /metrics, /healthz and /status.json, JSON logs, SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from outboxkit.cli import main
from tests.consumers.workload import Feed
from tests.daemons import http_get, http_json, json_log
from tests.processors.conftest import wait_for
from tests.processors.harness import Processes, processes
from tests.services import offsets_held_open, read_all


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_daemon_serves_metrics_health_and_status_and_logs_json(
    bootstrap_servers: str, new_topic: Callable[..., str], unique: Callable[[str], str], tmp_path: Path
) -> None:
    topic, output = new_topic("daemon-in", partitions=2), new_topic("daemon-out", partitions=2)
    Feed(bootstrap_servers, topic, keys=10, seed=43).write(40)
    name = unique("daemon")
    env = {
        "PROCESSOR_NAME": name,
        "PROCESSOR_TOPIC": topic,
        "PROCESSOR_OUTPUT": output,
        "PROCESSOR_DLQ": f"{topic}.dlq",
    }
    port = free_port()
    run = Processes(bootstrap_servers, env, tmp_path)
    try:
        instance = run.start(None, "--metrics-port", str(port))
        instance.wait_up()

        def handled_all() -> bool:
            status, body = http_json(port, "/status.json")
            return status == 200 and body["total_lag"] == 0 and all(p["position"] for p in body["partitions"])

        wait_for(handled_all, "lag 0 on /status.json", timeout=60)
        status, health = http_json(port, "/healthz")
        assert status == 200 and health["status"] == "ok", health
        status, metrics = http_get(port, "/metrics")
        assert status == 200
        assert f'outbox_processor_inputs_total{{processor="{name}"}} 40.0' in metrics.decode()
        assert (
            f'outbox_processor_transactions_total{{outcome="committed",processor="{name}"}}'
            in metrics.decode()
        )
        instance.stop()
    finally:
        run.close()
    entries = json_log(instance.log.read_text())
    assert any(e["message"] == "processor starting" and e["mode"] == "kafka" for e in entries)
    assert entries[-1]["message"] == "processor stopped"


def test_a_database_mode_processor_refuses_the_default_database_url(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    """It writes there (issue 13 item 8): without a URL it says so instead of using the local stack's."""
    env = {
        "PROCESSOR_NAME": unique("no-url"),
        "PROCESSOR_MODE": "database",
        "PROCESSOR_TOPIC": "unused",
        "PROCESSOR_OUTPUT": "unused",
        "PROCESSOR_DLQ": "unused-dlq",
        "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        "OUTBOX_DATABASE_URL": None,  # unset for the command
    }
    result = CliRunner().invoke(
        main, ["processor", "run", "tests.processors.target:from_environment"], env=env
    )
    assert result.exit_code == 1 and "no database URL given" in result.output, result.output


def test_sigterm_while_partitions_wait_behind_an_open_transaction_stops_at_once(
    bootstrap_servers: str, new_topic: Callable[..., str], unique: Callable[[str], str], tmp_path: Path
) -> None:
    """Taking partitions waits while a transaction holds the group's offsets (a paused zombie's,
    until its transaction timeout; here one that stays open). A SIGTERM meanwhile ends the wait
    within a second: the instance leaves with the partitions unclaimed and exits 0 (it waited
    until the claim's timeout, 120 s, before)."""
    topic, output = new_topic("claiming-in", partitions=2), new_topic("claiming-out", partitions=2)
    Feed(bootstrap_servers, topic, keys=10, seed=47).write(20)
    name = unique("claiming")
    run = processes(bootstrap_servers, topic, output, f"{topic}.dlq", name, tmp_path)
    try:
        with offsets_held_open(bootstrap_servers, f"outboxkit-processor-{name}", {(topic, 0): 5}):
            instance = run.start(None)
            instance.wait_up()
            waiting = "waiting for the committed offsets"
            wait_for(lambda: waiting in instance.tail(100_000), "the claim to wait", timeout=60)
            asked = time.monotonic()
            instance.process.send_signal(signal.SIGTERM)
            try:
                instance.process.wait(30)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"no exit 30 s after SIGTERM: {instance.tail()}") from None
            took = time.monotonic() - asked
        assert instance.exited() == 0, instance.tail()
        assert took < 5, f"{took:.1f} s from SIGTERM to exit"
        assert "stop asked while claiming, not claimed" in instance.tail(100_000)
        assert read_all(bootstrap_servers, output) == [], "nothing was handled"
    finally:
        run.close()
