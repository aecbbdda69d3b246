"""What operators see: /metrics, /healthz, `outbox relay status`, configuration precedence."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from outbox.errors import ConfigurationError
from outboxkit.cli import main
from relay.settings import RelayMode, load_settings
from tests.isolated import free_port
from tests.relay.conftest import RelayProcess, outbox_count, wait_for
from tests.relay.events import engine_for, outbox_for, write_numbered
from tests.services import consume_all


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


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
        return get(f"http://127.0.0.1:{port}/healthz")[0] == 200

    wait_for(healthy, 30, "/healthz to answer 200")
    health = orjson.loads(get(f"http://127.0.0.1:{port}/healthz")[1])
    assert health["status"] == "ok" and health["shards"] == [0, 1, 2]
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    metrics = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in body.decode().splitlines()
        if line and not line.startswith("#")
    }
    assert metrics["outbox_relay_published_total"] == 50
    assert metrics["outbox_relay_owned_shards"] == 3
    assert "outbox_relay_backlog_events" in metrics and "outbox_relay_oldest_unpublished_seconds" in metrics
    assert get(f"http://127.0.0.1:{port}/nothing")[0] == 404

    result = CliRunner().invoke(
        main,
        ["relay", "status"],
        env={
            "OUTBOX_DATABASE_URL": clean_outbox,
            "OUTBOX_RELAY_GROUP": relay.env["OUTBOX_RELAY_GROUP"],
            "OUTBOX_RELAY_SHARDS": "3",
        },
    )
    assert result.exit_code == 0, result.output
    assert "backlog:            0 unpublished events" in result.output
    assert "shards (3, group" in result.output and "0:pid" in result.output and "2:pid" in result.output
    assert relay.terminate() == 0


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
    result = CliRunner().invoke(main, ["relay", "run", "--shards", "0"])
    assert result.exit_code != 0 and "shards" in result.output
