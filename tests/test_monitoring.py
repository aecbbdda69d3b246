"""The monitoring files we ship (outboxkit/ops/monitoring/): Prometheus alert rules, the Grafana
dashboard and the compose scrape configuration. Every metric they name must be one the running
daemons export: a renamed metric would leave an alert silently blind."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import promql_parser
import psycopg
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from outbox import migrations
from outboxkit.examples.sites.events import SitesHistory, emit
from outboxkit.examples.sites.read_model import create_read_model
from tests.daemons import healthy, http_get
from tests.isolated import free_port
from tests.projectors.conftest import projector_process
from tests.relay.conftest import start_cdc_monitor, start_relay, wait_for

REPO = Path(__file__).resolve().parent.parent
MONITORING = REPO / "outboxkit" / "ops" / "monitoring"
METRIC = re.compile(r"\b(outbox_[a-z_]+)\b")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def named_metrics() -> set[str]:
    exprs = [r["expr"] for r in alert_rules()] + dashboard_exprs()
    return {name for expr in exprs for name in METRIC.findall(expr)}


def exported(exposition: str) -> set[str]:
    """The sample names a scrape can hold: a counter `x` is `x_total`, a histogram `x_bucket`, ..."""
    names = set()
    for family in text_string_to_metric_families(exposition):
        suffixes = SUFFIXES.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
    return names


def test_every_alert_is_complete_and_names_a_scraped_job() -> None:
    rules = alert_rules()
    assert len({r["alert"] for r in rules}) == len(rules) >= 10
    scrape = (MONITORING / "prometheus.yml").read_text()
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule
        for job in re.findall(r'job="([^"]+)"', rule["expr"]):
            assert f"job_name: {job}" in scrape, (
                f"{rule['alert']} names job {job}, which prometheus.yml lacks"
            )
    # What the issue asks alerts for: backlog growing, lag, quarantine, relay down, slot WAL, dead letters.
    covered = " ".join(r["expr"] for r in rules)
    for metric in (
        "outbox_relay_backlog_events",
        "outbox_relay_oldest_unpublished_seconds",
        "outbox_projector_lag",
        "outbox_relay_quarantine_events",
        'up{job="outbox-relay"}',
        "outbox_cdc_slot_retained_wal_bytes",
        "outbox_projector_dead_lettered_total",
    ):
        assert metric in covered, metric


@pytest.mark.parametrize("expr", [r["expr"] for r in alert_rules()] + dashboard_exprs())
def test_every_expression_is_valid_promql(expr: str) -> None:
    promql_parser.parse(expr)  # ValueError naming the problem otherwise


def test_compose_mounts_the_shipped_files() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    for service in ("prometheus", "grafana"):
        for volume in compose[service]["volumes"]:
            source = volume.split(":")[0]
            assert (REPO / source).is_file(), f"{service} mounts {source}, which does not exist"
    assert compose["cdc-monitor"]["command"][:2] == ["cdc", "monitor"]


@pytest.fixture
def cdc_monitor(database_url: str, connect_url: str, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    env = {"OUTBOX_DATABASE_URL": database_url, "OUTBOX_CONNECT_URL": connect_url}
    proc = start_cdc_monitor(env, port, tmp_path / "cdc-monitor.log")
    try:
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


def scrape(port: int) -> str:
    wait_for(lambda: _answers(port), 60, f"/metrics on port {port}")
    return http_get(port, "/metrics")[1].decode()


def _answers(port: int) -> bool:
    try:
        return http_get(port, "/metrics")[0] == 200
    except OSError:
        return False


def test_every_metric_the_alerts_and_dashboard_name_is_exported_by_the_running_daemons(
    new_database: Callable[[], str],
    bootstrap_servers: str,
    new_topic: Callable[..., str],
    unique: Callable[[str], str],
    cdc_monitor: int,
    tmp_path: Path,
) -> None:
    relay_db, projector_db = new_database(), new_database()
    migrations.upgrade(relay_db)
    migrations.upgrade(projector_db)
    engine = create_engine(migrations.sqlalchemy_url(projector_db))
    with engine.begin() as conn:
        create_read_model(conn)
    engine.dispose()
    topic = new_topic("monitoring", partitions=1)
    emit(bootstrap_servers, topic, SitesHistory(seed=1).generate(20, sites=3))

    relay_port, projector_port = free_port(), free_port()
    relay = start_relay(tmp_path, relay_db, bootstrap_servers, "idempotent", metrics_port=str(relay_port))
    projector = projector_process(
        "outboxkit.examples.sites.projection:from_environment",
        projector_db,
        bootstrap_servers,
        {"SITES_TOPIC": topic, "SITES_PROJECTOR": unique("monitoring")},
        "--metrics-port",
        str(projector_port),
        log=tmp_path / "projector.log",
    )
    try:
        wait_for(lambda: healthy(relay_port) and healthy(projector_port), 60, "relay and projector healthy")
        served = set()
        for port in (relay_port, projector_port, cdc_monitor):
            served |= exported(scrape(port))
    finally:
        projector.send_signal(signal.SIGTERM)
        projector.wait(30)
        relay.terminate()
    missing = sorted(named_metrics() - served)
    assert not missing, f"alerts.yml / dashboard.json name metrics no daemon exports: {missing}"
    with psycopg.connect(relay_db) as conn:  # the relay really ran against its database
        assert conn.execute("SELECT count(*) FROM outbox_events").fetchone() == (0,)
