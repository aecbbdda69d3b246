"""What operators see of a projector daemon (`outbox projector run` as a process): /metrics,
/healthz, /status.json and its JSON log; and the runner's health hook."""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import orjson
import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from outboxkit.cli.projector import projector as projector_group
from outboxkit.examples.sites.events import emit
from outboxkit.examples.sites.projection import build_projector
from outboxkit.ops.health import Heartbeat
from projectors.database import engine_for
from projectors.errors import ProjectorError
from projectors.runtime import ProjectorRunner
from projectors.status import ProjectorStatusSource
from tests.daemons import http_get, http_json, json_log
from tests.isolated import free_port
from tests.projectors.conftest import SitesTopic, projector_process, running, stored_total, wait_until

REFERENCE = "outboxkit.examples.sites.projection:from_environment"


def applied(metrics: bytes, name: str, topic: str) -> float:
    found = re.search(
        rf'outbox_projector_events_applied_total\{{projector="{name}",topic="{topic}"\}} ([0-9.e+]+)',
        metrics.decode(),
    )
    return float(found.group(1)) if found else 0.0


def test_the_daemon_serves_metrics_health_and_status_and_logs_json(
    sites_db: Engine,
    projector_db: str,
    bootstrap_servers: str,
    sites_topic: SitesTopic,
    unique: Callable[[str], str],
    tmp_path: Path,
) -> None:
    topic, history = sites_topic("sites-daemon", partitions=2, events=200, sites=10, seed=4)
    name, port, log = unique("daemon"), free_port(), tmp_path / "projector.log"
    env = {"SITES_TOPIC": topic, "SITES_PROJECTOR": name}
    args = ("--metrics-port", str(port), "--stale-after", "2")
    proc = projector_process(REFERENCE, projector_db, bootstrap_servers, env, *args, log=log)
    try:
        wait_until(lambda: stored_total(sites_db, name) == 200, what="200 records applied")
        wait_until(lambda: http_get(port, "/healthz")[0] == 200, what="/healthz to answer 200")
        status, health = http_json(port, "/healthz")
        assert health["status"] == "ok" and health["partitions"] == [f"{topic}[0]", f"{topic}[1]"], health
        status, metrics = http_get(port, "/metrics")
        assert status == 200 and applied(metrics, name, topic) == 200

        source = ProjectorStatusSource(build_projector(topic, name=name), sites_db, bootstrap_servers)
        status, served = http_json(port, "/status.json")
        assert status == 200 and served == source.snapshot()
        assert served["total_lag"] == 0 and [p["next_offset"] for p in served["partitions"]] == [
            p["high"] for p in served["partitions"]
        ]
        cli_env = {
            "OUTBOX_DATABASE_URL": projector_db,
            "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
            **env,
        }
        as_json = CliRunner().invoke(projector_group, ["status", "--json", REFERENCE], env=cli_env)
        assert as_json.exit_code == 0, as_json.output
        assert orjson.loads(as_json.stdout) == served
        text = CliRunner().invoke(projector_group, ["status", REFERENCE], env=cli_env).output
        for p in served["partitions"]:
            assert f"{p['next_offset']:>12} {p['high']:>12} {p['lag']:>10}" in text, text
        assert text.strip().endswith(f"total lag {served['total_lag']}")

        # The database stops answering the projector: its batch waits on a lock held elsewhere
        # (as it would on a database that hangs). The loop stops turning, /healthz says so.
        with psycopg.connect(projector_db) as holder:
            holder.execute("SELECT * FROM projector_offsets WHERE projector = %s FOR UPDATE", (name,))
            emit(bootstrap_servers, topic, history.generate(20, sites=10))
            wait_until(lambda: http_get(port, "/healthz")[0] == 503, timeout=30, what="/healthz to say 503")
            status, health = http_json(port, "/healthz")
            assert health["status"] == "stale" and health["reason"].startswith("no heartbeat for"), health
            status, served = http_json(port, "/status.json")  # reading offsets takes no lock
            assert status == 200 and served["total_lag"] == 20, served
        wait_until(lambda: stored_total(sites_db, name) == 220, what="the held batch to be applied")
        wait_until(lambda: http_get(port, "/healthz")[0] == 200, what="/healthz to be ok again")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    logged = json_log(log.read_text())
    assert {e["message"] for e in logged} >= {"projector starting", "projector stopped"}
    assert {e["logger"] for e in logged} >= {"outboxkit.projector", "outboxkit.kafka.group", "outboxkit.ops"}


def test_a_projector_that_cannot_go_on_logs_why_as_json_and_exits_1(
    new_database: Callable[[], str],
    bootstrap_servers: str,
    new_topic: Callable[..., str],
    unique: Callable[[str], str],
    tmp_path: Path,
) -> None:
    """A database without the projector tables (not migrated)."""
    log = tmp_path / "projector.log"
    env = {"SITES_TOPIC": new_topic("sites-nodb"), "SITES_PROJECTOR": unique("nodb")}
    proc = projector_process(REFERENCE, new_database(), bootstrap_servers, env, log=log)
    assert proc.wait(60) == 1
    *_, last = json_log(log.read_text())
    assert last["level"] == "error" and last["message"].startswith("projector cannot go on: projector")
    assert (
        "table projector_offsets, projector_applied_events, projector_dead_letters does not exist"
        in last["message"]
    ), last
    assert "outbox migrate upgrade" in last["message"] and "alembic upgrade heads" in last["message"], last


def test_the_runner_beats_its_health_and_reports_a_failure(
    sites_db: Engine,
    new_database: Callable[[], str],
    bootstrap_servers: str,
    sites_topic: SitesTopic,
    unique: Callable[[str], str],
) -> None:
    topic, _ = sites_topic("sites-health", partitions=1, events=10, sites=3, seed=5)
    projector = build_projector(topic, name=unique("health"))
    health = Heartbeat()
    assert health.report().body["status"] == "starting"
    with running(projector, sites_db, bootstrap_servers, health=health):
        wait_until(lambda: health.report().body.get("partitions") == [f"{topic}[0]"], what="an ok beat")
        assert health.report().healthy
        wait_until(lambda: stored_total(sites_db, projector.name) == 10, what="10 records applied")

    unmigrated = engine_for(new_database())
    try:
        failed = Heartbeat()
        runner = ProjectorRunner(projector, unmigrated, bootstrap_servers, health=failed)
        with pytest.raises(ProjectorError, match="projector_offsets") as raised:
            runner.run(threading.Event())
    finally:
        unmigrated.dispose()
    report = failed.report()
    assert not report.healthy
    assert report.body["status"] == "failed" and report.body["reason"] == str(raised.value)
