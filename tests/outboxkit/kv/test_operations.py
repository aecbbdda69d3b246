"""Operations of a KV store: metrics, the status source, and `outbox kv status|get|put|delete|dump`
through click's CliRunner against the real broker."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
from click.testing import CliRunner
from prometheus_client import generate_latest

from outboxkit.cli import main
from outboxkit.kv import KVStore, KVWriter
from outboxkit.kv.metrics import KVMetrics
from outboxkit.kv.status import KVStatusSource
from outboxkit.kv.stores.disk import DiskStore


def test_metrics_and_status_of_a_running_reader(bootstrap_servers: str, kv_topic: Callable[[], str]) -> None:
    topic = kv_topic()
    writer = KVWriter(topic, kafka=bootstrap_servers, partitions=2)
    writer.put_many({f"k{i}": "v" * 10 for i in range(50)})
    with KVStore(topic, kafka=bootstrap_servers) as reader:
        metrics = KVMetrics(reader)
        reader.wait_ready(30)
        last = writer.put_many({f"k{i}": "w" * 10 for i in range(20)})
        for version in last:
            reader.wait_for(version, 10)
        text = generate_latest(metrics.registry).decode()
        status = KVStatusSource(topic, bootstrap_servers, reader=reader).read()
    assert f'outbox_kv_keys{{topic="{topic}"}} 50.0' in text
    assert f'outbox_kv_bytes{{topic="{topic}"}} {float(sum(len(f"k{i}") + 12 for i in range(50)))}' in text
    assert f'outbox_kv_updates_total{{topic="{topic}"}} 70.0' in text
    assert f'outbox_kv_ready{{topic="{topic}"}} 1.0' in text and "outbox_kv_load_seconds" in text
    assert f'outbox_kv_lag_offsets{{partition="0",topic="{topic}"}} 0.0' in text
    assert status.keys == 50 and status.total_lag == 0 and status.reader["ready"] is True
    assert status.bytes == sum(len(f"k{i}") + 12 for i in range(50))
    assert status.compaction["cleanup.policy"] == "compact"
    assert "50 keys" in status.line() and "lag 0" in status.line()


def test_the_commands_put_get_delete_dump_and_status(
    bootstrap_servers: str, kv_topic: Callable[[], str], tmp_path: Path
) -> None:
    topic = kv_topic()
    KVWriter(topic, kafka=bootstrap_servers, partitions=2)
    cli = CliRunner()
    env = {"OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers}

    def run(*args: str, code: int = 0) -> str:
        result = cli.invoke(main, ["kv", *args], env=env)
        assert result.exit_code == code, result.output
        if args[0] in ("get", "dump") and code == 0:  # the load's progress, on stderr (not a terminal: lines)
            assert any(line.startswith(f"loading {topic}: ") for line in result.stderr.splitlines()), (
                result.stderr
            )
        return result.stdout if code == 0 else result.output

    assert run("put", topic, "site:1", '{"theme": "dark"}').strip().count("@") == 1
    run("put", topic, "banner", "Hello", "--text")
    run("put", topic, "gone", "1")
    run("delete", topic, "gone")
    assert "not JSON" in run("put", topic, "bad", "not json", code=2)
    assert run("get", topic, "site:1").splitlines()[0] == '{"theme":"dark"}'
    assert "no key 'gone'" in run("get", topic, "gone", code=1)
    lines = [orjson.loads(line) for line in run("dump", topic).splitlines() if line.startswith("{")]
    assert [(d["key"], d["value"]) for d in lines] == [("banner", "Hello"), ("site:1", {"theme": "dark"})]
    status = orjson.loads(run("status", topic, "--json").splitlines()[-1])
    assert len(status["partitions"]) == 2 and status["keys"] is None
    # With a disk store that a running reader writes: the commands (other processes, as an
    # operator runs them) read it read-only; status tells whether a restart would trust it.
    with KVStore(topic, kafka=bootstrap_servers, store=DiskStore(tmp_path)) as reader:
        reader.wait_ready(30)
        command = [sys.executable, "-m", "outboxkit", "kv"]
        found = subprocess.run(
            [*command, "status", topic, "--disk", str(tmp_path), "--json"],
            env={**os.environ, **env},
            capture_output=True,
            check=True,
        )
        on_disk = orjson.loads(found.stdout.splitlines()[-1])
        assert on_disk["keys"] == 2 and on_disk["checkpoint"]["trusted"] is True and on_disk["total_lag"] == 0
        found = subprocess.run(
            [*command, "get", topic, "banner", "--disk", str(tmp_path)],
            env={**os.environ, **env},
            capture_output=True,
            check=True,
        )
        assert found.stdout == b"Hello\n"
    assert "checkpoint usable" in run("status", topic, "--disk", str(tmp_path))
    missing = f"{topic}-missing"
    assert "does not exist" in run("put", missing, "a", "1", code=1)
