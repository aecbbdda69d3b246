"""`outbox cdc monitor`: the daemon that puts the CDC relay's connector and slot on /metrics."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from outboxkit.ops.health import HealthStatus
from relay.monitor import CdcMonitor
from relay.status import CdcStatusSource
from tests.daemons import healthy, http_get, http_json, json_log
from tests.isolated import free_port
from tests.relay.conftest import start_cdc_monitor, wait_for
from tests.relay.connectors import CdcConnector


def test_the_daemon_serves_a_running_connector_and_its_slot(
    cdc_factory: Callable[..., CdcConnector], cdc_db: str, connect_url: str, tmp_path: Path
) -> None:
    connector = cdc_factory()
    name, slot = connector.settings.connector_name, connector.settings.slot_name
    port, log = free_port(), tmp_path / "monitor.log"
    env = {
        "OUTBOX_DATABASE_URL": cdc_db,
        "OUTBOX_CONNECT_URL": connect_url,
        "OUTBOX_CDC_CONNECTOR_NAME": name,
        "OUTBOX_CDC_SLOT_NAME": slot,
    }
    proc = start_cdc_monitor(env, port, log, interval=0.5)
    try:
        wait_for(lambda: proc.poll() is None and healthy(port), 30, "/healthz 200")
        status, health = http_json(port, "/healthz")
        assert health["status"] == "ok" and health["connector"] == name and health["slot"] == slot, health
        metrics = http_get(port, "/metrics")[1].decode()
        assert f'outbox_cdc_connector_running{{connector="{name}"}} 1.0' in metrics, metrics
        assert f'outbox_cdc_slot_active{{slot="{slot}"}} 1.0' in metrics, metrics
        assert f'outbox_cdc_slot_retained_wal_bytes{{slot="{slot}"}}' in metrics
        status, served = http_json(port, "/status.json")
        assert status == 200 and served["connector"]["running"] is True and served["slot"]["active"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
    assert code == 0
    entries = json_log(log.read_text())
    assert any(e["message"].startswith("serving /metrics /healthz /status.json") for e in entries), entries


def test_an_unregistered_connector_is_degraded_with_the_command_that_registers_it(
    cdc_db: str, connect_url: str
) -> None:
    monitor = CdcMonitor(CdcStatusSource(connect_url, cdc_db, "no-such-connector", "no_such_slot"), 1.0)
    monitor.turn()
    report = monitor.heartbeat.report()
    assert not report.healthy and report.body["status"] == HealthStatus.DEGRADED
    assert report.body["reason"] == "connector no-such-connector is not registered (outbox cdc register)"
    metrics = monitor.metrics.exposition().decode()
    assert 'outbox_cdc_connector_running{connector="no-such-connector"} 0.0' in metrics
    assert 'outbox_cdc_slot_retained_wal_bytes{slot="no_such_slot"} 0.0' in metrics


def test_connect_out_of_reach_is_degraded_and_keeps_the_last_gauges(cdc_db: str) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"
    monitor = CdcMonitor(CdcStatusSource(unreachable, cdc_db, "c", "s"), 1.0)
    monitor.turn()
    report = monitor.heartbeat.report()
    assert not report.healthy and report.body["status"] == HealthStatus.DEGRADED
    assert unreachable in str(report.body["reason"]), report.body
    assert monitor.last is None
