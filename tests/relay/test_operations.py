"""What operators see: /metrics, /healthz, /status.json, logs, `outbox relay status`, configuration
precedence."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import orjson
import psycopg
import pytest
from click.testing import CliRunner

from outbox import migrations
from outbox.errors import ConfigurationError
from outboxkit.cli import main
from relay import sql
from relay.settings import RelayMode, load_settings
from relay.status import RelayStatusSource
from tests.daemons import http_get, http_json, json_log
from tests.isolated import free_port
from tests.relay.conftest import RelayProcess, outbox_count, wait_for
from tests.relay.events import engine_for, outbox_for, write_numbered
from tests.services import consume_all


def test_metrics_health_and_status(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    topic = new_topic("ops")
    write_numbered(engine_for(clean_outbox), outbox_for(topic), ["a", "b"], 25)
    port = free_port()
    relay = relay_factory(metrics_port=port, shards=3)
    relay.wait_ready()
    consume_all(bootstrap_servers, topic, 50, timeout=20)
    wait_for(lambda: outbox_count(clean_outbox) == 0, 30, "the outbox to drain")

    def healthy() -> bool:
        return http_get(port, "/healthz")[0] == 200

    wait_for(healthy, 30, "/healthz to answer 200")
    health = orjson.loads(http_get(port, "/healthz")[1])
    assert health["status"] == "ok" and health["shards"] == [0, 1, 2]
    status, body = http_get(port, "/metrics")
    assert status == 200
    metrics = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in body.decode().splitlines()
        if line and not line.startswith("#")
    }
    assert metrics["outbox_relay_published_total"] == 50
    assert metrics["outbox_relay_owned_shards"] == 3
    assert "outbox_relay_backlog_events" in metrics and "outbox_relay_oldest_unpublished_seconds" in metrics
    assert http_get(port, "/nothing")[0] == 404

    group = relay.env["OUTBOX_RELAY_GROUP"]
    source = RelayStatusSource(clean_outbox, group, 3)
    status, served = http_json(port, "/status.json")
    assert status == 200
    assert served == source.snapshot()
    assert (served["backlog"], served["quarantined"], served["group"]) == (0, 0, group)
    assert [owner["shard"] for owner in served["owners"]] == [0, 1, 2]
    # Issue 13 item 14: an owner is named by the relay's instance (what its logs and /healthz say),
    # not only by the PostgreSQL backend pid of its lease connection.
    assert {owner["instance"] for owner in served["owners"]} == {health["instance"]}
    assert [g["name"] for g in served["groups"]] == [group] and served["other_groups"] == []
    assert served["groups"][0]["instances"] == [health["instance"]]

    env = {"OUTBOX_DATABASE_URL": clean_outbox, "OUTBOX_RELAY_GROUP": group, "OUTBOX_RELAY_SHARDS": "3"}
    result = CliRunner().invoke(main, ["relay", "status"], env=env)
    assert result.exit_code == 0, result.output
    assert "backlog:            0 unpublished events" in result.output
    owners = ", ".join(f"{o['shard']}: {health['instance']} (pid {o['pid']})" for o in served["owners"])
    assert f"shards (3, group {group}): {owners}" in result.output
    pids = ", ".join(map(str, served["groups"][0]["pids"]))
    assert (
        f"relay groups:       {group} (instances {health['instance']}; pids {pids}) on {served['table']}"
        in result.output
    )
    as_json = CliRunner().invoke(main, ["relay", "status", "--json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    assert orjson.loads(as_json.stdout) == served
    assert relay.terminate() == 0
    logged = json_log(relay.log_path.read_text())
    assert {e["message"] for e in logged} >= {"relay starting", "shard acquired", "relay stopped"}


def test_settings_precedence_is_flags_then_environment_then_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "relay.toml"
    config.write_text(
        'database_url = "postgresql://file/db"\nsource = "from-file"\n'
        '[relay]\nmode = "transactional"\nbatch_size = 10\nshards = 4\n'
    )
    monkeypatch.setenv("OUTBOX_RELAY_BATCH_SIZE", "20")
    monkeypatch.setenv("OUTBOX_SOURCE", "from-env")
    monkeypatch.delenv("OUTBOX_DATABASE_URL", raising=False)  # the file's URL is the one asserted
    outbox, relay = load_settings(config, relay_shards=8)
    assert relay.mode is RelayMode.TRANSACTIONAL  # file
    assert relay.batch_size == 20  # environment beats file
    assert relay.shards == 8  # flag beats both
    assert outbox.database_url == "postgresql://file/db"
    assert outbox.source == "from-env"


def test_bad_settings_say_what_is_wrong(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text("[relay]\nbatch_sise = 10\n")
    with pytest.raises(ConfigurationError, match=r"unknown RelaySettings keys.*batch_sise"):
        load_settings(config)
    with pytest.raises(ConfigurationError, match="mode"):
        load_settings(None, relay_mode="exactly-twice")
    unused = {"OUTBOX_DATABASE_URL": "postgresql://outbox@127.0.0.1:1/unused"}
    result = CliRunner().invoke(main, ["relay", "run", "--shards", "0"], env=unused)
    assert result.exit_code != 0 and "shards" in result.output


def test_status_prints_the_numbers_of_the_status_source(
    clean_outbox: str, unique: Callable[[str], str]
) -> None:
    """A backlog and a quarantined event, no relay running: the command and the source agree."""
    write_numbered(engine_for(clean_outbox), outbox_for(unique("status")), ["a", "b", "c"], 4)
    with psycopg.connect(clean_outbox, autocommit=True) as conn:
        row = conn.execute("SELECT min(id) FROM outbox_events").fetchone()
        assert row is not None
        conn.execute(*sql.quarantine(row[0], "test: held for the status"))
    group = unique("status-group")
    before = RelayStatusSource(clean_outbox, group, 2).read()
    env = {"OUTBOX_DATABASE_URL": clean_outbox, "OUTBOX_RELAY_GROUP": group, "OUTBOX_RELAY_SHARDS": "2"}
    result = CliRunner().invoke(main, ["relay", "status"], env=env)
    after = RelayStatusSource(clean_outbox, group, 2).read()
    assert result.exit_code == 0, result.output
    printed = dict(line.split(":", 1) for line in result.output.splitlines() if line.count(":") == 1)
    assert (before.backlog, before.quarantined, before.owners) == (11, 1, ())
    assert printed["backlog"].split()[0] == str(before.backlog)
    assert printed["quarantined"].split()[0] == str(before.quarantined)
    lag = float(printed["lag"].split()[0])
    assert before.oldest_unpublished_seconds - 0.001 <= lag <= after.oldest_unpublished_seconds + 0.001
    assert f"shards (2, group {group}): none" in result.output


def test_health_and_status_say_when_the_database_cannot_be_reached(
    relay_factory: Callable[..., RelayProcess],
) -> None:
    port, nothing_there = free_port(), free_port()
    relay = relay_factory(
        env_extra={"OUTBOX_DATABASE_URL": f"postgresql://outbox:hunter2@127.0.0.1:{nothing_there}/outbox"},
        metrics_port=port,
        max_backoff=0.5,
    )
    relay.wait_ready()
    wait_for(lambda: http_get(port, "/healthz")[0] == 503, 20, "/healthz to answer")
    wait_for(lambda: b'"degraded"' in http_get(port, "/healthz")[1], 20, "the relay to say degraded")
    status, health = http_json(port, "/healthz")
    assert status == 503 and health["status"] == "degraded", health
    assert health["reason"].startswith("postgres:") and "hunter2" not in health["reason"], health
    status, said = http_json(port, "/status.json")
    assert status == 503, said
    assert said["error"].startswith(
        f"cannot connect to PostgreSQL at postgresql://outbox:***@127.0.0.1:{nothing_there}"
    )
    status, metrics = http_get(port, "/metrics")
    assert status == 200 and re.search(rb'outbox_relay_errors_total\{kind="postgres"\} [1-9]', metrics)
    assert relay.terminate() == 0
    text = relay.log_path.read_text()
    assert "hunter2" not in text
    assert any(e["level"] == "warning" and "postgres" in e["message"] for e in json_log(text))


def test_a_relay_on_a_database_without_tables_waits_degraded_until_it_is_migrated(
    relay_factory: Callable[..., RelayProcess],
    new_database: Callable[[], str],
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    url = new_database()
    port = free_port()
    relay = relay_factory(env_extra={"OUTBOX_DATABASE_URL": url}, metrics_port=port, max_backoff=0.5)
    relay.wait_ready()
    wait_for(lambda: b'"degraded"' in http_get(port, "/healthz")[1], 20, "the relay to say degraded")
    status, health = http_json(port, "/healthz")
    assert status == 503
    assert health["reason"].startswith("postgres: ") and "outbox_events" in health["reason"], health
    assert "`outbox migrate upgrade`" in health["reason"], health
    status, said = http_json(port, "/status.json")
    assert status == 503 and "outbox migrate upgrade" in said["error"], said
    assert relay.alive()

    migrations.upgrade(url)
    topic = new_topic("migrated")
    write_numbered(engine_for(url), outbox_for(topic), ["a"], 5)
    assert len(consume_all(bootstrap_servers, topic, 5, timeout=30)) == 5
    wait_for(lambda: http_get(port, "/healthz")[0] == 200, 20, "/healthz to be ok once migrated")
    wait_for(lambda: http_json(port, "/status.json")[1]["backlog"] == 0, 20, "/status.json: no backlog")
    assert relay.terminate() == 0
    # What the issue found (13, item 6): a raw UndefinedTable traceback in the log. Every line
    # about the missing table says what publish() says instead: run the migrations, and how.
    entries = json_log(relay.log_path.read_text())
    assert not [e for e in entries if "Traceback" in str(e) or "UndefinedTable" in str(e)], entries
    missing = [e for e in entries if "outbox_events" in e["message"]]
    assert missing and all("alembic upgrade heads" in e["message"] for e in missing), missing


def test_librdkafkas_own_log_lines_are_json_too(
    relay_factory: Callable[..., RelayProcess], clean_outbox: str, unique: Callable[[str], str]
) -> None:
    """A broker nobody answers on: librdkafka logs its connection failures, and they arrive in the
    daemon's one JSON stream (logger `librdkafka`), not as `%3|...|FAIL|...` lines on stderr."""
    write_numbered(engine_for(clean_outbox), outbox_for(unique("nobroker")), ["agg-0"], 3)
    relay = relay_factory(
        env_extra={"OUTBOX_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"},
        max_backoff=0.5,
        # SIGTERM lets the batch in flight finish: with nobody to deliver to, that is the message
        # time-out (10 s by default in these tests).
        message_timeout_ms=2000,
    )
    relay.wait_ready()
    wait_for(lambda: b"librdkafka" in relay.log_path.read_bytes(), 30, "librdkafka to log")
    assert relay.terminate() == 0
    entries = json_log(relay.log_path.read_text())  # fails on any line that is not JSON
    kafka = [e for e in entries if e["logger"] == "librdkafka"]
    assert kafka and any("Connect to" in e["message"] or "FAIL" in e["message"] for e in kafka), kafka
    assert outbox_count(clean_outbox) == 3, "nothing lost while Kafka is unreachable"
