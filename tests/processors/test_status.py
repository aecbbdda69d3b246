"""`outbox processor status`: lag per partition, and a transaction that pins the last stable offset."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
from click.testing import CliRunner
from confluent_kafka import Producer

from outboxkit.cli import main
from outboxkit.kafka.admin import offsets_partition
from tests.consumers.workload import Feed
from tests.services import offsets_held_open

REFERENCE = "tests.processors.target:from_environment"


def test_status_shows_lag_and_reports_a_hanging_transaction(
    bootstrap_servers: str, new_topic: Callable[..., str], unique: Callable[[str], str], monkeypatch: object
) -> None:
    topic = new_topic("status-in", partitions=2)
    Feed(bootstrap_servers, topic, keys=10, seed=41).write(30)
    env = {
        "PROCESSOR_NAME": unique("status"),
        "PROCESSOR_TOPIC": topic,
        "PROCESSOR_OUTPUT": "unused",
        "PROCESSOR_DLQ": "unused-dlq",
        "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
    }
    hanging = Producer(
        {"bootstrap.servers": bootstrap_servers, "transactional.id": f"hang-{uuid.uuid4().hex[:8]}"}
    )
    hanging.init_transactions(30)
    hanging.begin_transaction()
    hanging.produce(topic, key=b"x", value=b"held open", partition=1)
    assert hanging.flush(30) == 0
    time.sleep(1.5)
    try:
        result = CliRunner().invoke(
            main, ["processor", "status", REFERENCE, "--json", "--hanging-after", "1"], env=env
        )
        assert result.exit_code == 0, result.output
        status = orjson.loads(result.stdout)
        rows = {p["partition"]: p for p in status["partitions"]}
        assert sum(p["lag"] for p in rows.values()) == 30, "nothing handled yet: every record is lag"
        assert rows[0]["hanging_transaction"] is False
        assert rows[1]["hanging_transaction"] is True and rows[1]["stable"] < rows[1]["end"]
        assert rows[1]["open_transaction_seconds"] >= 1
        assert status["hanging_transactions"] == 1

        text = CliRunner().invoke(main, ["processor", "status", REFERENCE, "--hanging-after", "1"], env=env)
        assert f"{topic}[1]: a transaction open for" in text.stdout
    finally:
        hanging.abort_transaction(30)


def test_status_reports_offsets_an_open_transaction_holds_without_waiting_for_it(
    bootstrap_servers: str, new_topic: Callable[..., str], unique: Callable[[str], str]
) -> None:
    """A transaction that sent offsets for the group and has not ended: the status shows the last
    committed position at once (it does not wait for the transaction) and says the offset is held."""
    topic, name = new_topic("status-held", partitions=2), unique("held")
    env = {
        "PROCESSOR_NAME": name,
        "PROCESSOR_TOPIC": topic,
        "PROCESSOR_OUTPUT": "unused",
        "PROCESSOR_DLQ": "unused-dlq",
        "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
    }
    with offsets_held_open(bootstrap_servers, f"outboxkit-processor-{name}", {(topic, 0): 3}):
        started = time.monotonic()
        result = CliRunner().invoke(main, ["processor", "status", REFERENCE, "--json"], env=env)
        assert result.exit_code == 0, result.output
        assert time.monotonic() - started < 8, "the status waited for the open transaction"
        status = orjson.loads(result.stdout)
        rows = {p["partition"]: p for p in status["partitions"]}
        assert rows[0]["offsets_held"] is True and rows[0]["position"] is None
        assert rows[1]["offsets_held"] is False
        assert status["offsets_held"] == 1
        assert status["offsets_partition"] == offsets_partition(f"outboxkit-processor-{name}", 10)
        text = CliRunner().invoke(main, ["processor", "status", REFERENCE], env=env)
        assert f"{topic}[0]: an open transaction holds the group's committed offset" in text.stdout
        assert f"--partition {status['offsets_partition']} and abort it" in text.stdout


SERVICE_MODULE = """
from outboxkit.processors import Processor

payments = Processor("{name}", ["{topic}"], mode="kafka")
"""


def test_reference_is_imported_from_the_current_directory_or_the_app_dir(
    tmp_path: Path, bootstrap_servers: str, unique: Callable[[str], str], new_topic: Callable[..., str]
) -> None:
    """As for projectors (issue 13 item 7): the installed `outbox` script has only its bin/ on sys.path."""
    topic, name = new_topic("processor-app-dir"), unique("app-dir")
    service = tmp_path / "service"
    service.mkdir()
    module = unique("payments_processor").replace("-", "_")
    (service / f"{module}.py").write_text(SERVICE_MODULE.format(name=name, topic=topic))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["OUTBOX_KAFKA_BOOTSTRAP_SERVERS"] = bootstrap_servers

    def status(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        script = Path(sys.executable).parent / "outbox"
        command = [str(script), "processor", "status", *args]
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)

    here = status(f"{module}:payments", cwd=service)
    assert here.returncode == 0, here.stderr
    assert here.stdout.startswith(f"processor {name} (mode kafka")
    elsewhere = status(f"{module}:payments", "--app-dir", str(service), cwd=tmp_path)
    assert elsewhere.returncode == 0, elsewhere.stderr
    missing = status(f"{module}:payments", cwd=tmp_path)
    assert missing.returncode == 2 and "--app-dir" in missing.stderr, missing.stderr
