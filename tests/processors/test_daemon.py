"""`outbox processor run` as a daemon: /metrics, /healthz and /status.json, JSON logs, SIGTERM."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from tests.consumers.workload import Feed
from tests.daemons import http_get, http_json, json_log
from tests.processors.conftest import wait_for
from tests.processors.harness import Processes


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
