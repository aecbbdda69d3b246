"""`outbox processor status`: lag per partition, and a transaction that pins the last stable offset."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import orjson
from click.testing import CliRunner
from confluent_kafka import Producer

from outboxkit.cli import main
from tests.consumers.workload import Feed

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
