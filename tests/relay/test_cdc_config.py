"""Unit tests of the CDC connector configuration (pure: no services)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from outbox import envelope
from outbox.config import OutboxSettings
from outbox.envelope import StoredEvent, to_kafka
from outbox.errors import ConfigurationError
from outboxkit.cli import main
from relay import cdc
from relay.cdc import CdcSettings, SnapshotMode, connector_config
from relay.errors import ConnectorConflictError
from relay.settings import RelayMode, load_settings

OUTBOX = OutboxSettings(database_url="postgresql://svc:s%40cret@db.internal:6543/shop")


def build(**cdc_overrides: object) -> dict[str, str]:
    return connector_config(OUTBOX, CdcSettings(**cdc_overrides))  # type: ignore[arg-type]


def test_database_and_slot_come_from_the_settings() -> None:
    config = build(slot_name="shop_outbox", publication="shop_pub", connector_name="shop")
    assert config["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert (config["database.hostname"], config["database.port"]) == ("db.internal", "6543")
    assert (config["database.user"], config["database.password"]) == ("svc", "s@cret")
    assert config["database.dbname"] == "shop"
    assert config["plugin.name"] == "pgoutput"
    assert config["slot.name"] == "shop_outbox"
    assert config["publication.name"] == "shop_pub"
    assert config["publication.autocreate.mode"] == "filtered"
    assert config["table.include.list"] == "public.outbox_events"
    assert config["tasks.max"] == "1"
    assert all(isinstance(v, str) for v in config.values())


def test_sqlalchemy_style_url_is_accepted() -> None:
    outbox = OutboxSettings(database_url="postgresql+psycopg://u:p@h/d")
    config = connector_config(outbox, CdcSettings())
    assert (config["database.hostname"], config["database.dbname"]) == ("h", "d")


def test_outbox_fit_defaults() -> None:
    config = build()
    assert config["snapshot.mode"] == "no_data"
    assert "snapshot.select.statement.overrides" not in config
    assert config["heartbeat.interval.ms"] == "10000"
    assert config["tombstones.on.delete"] == "false"
    assert "exactly.once.support" not in config


def test_initial_snapshot_publishes_the_unpublished_rows_in_id_order() -> None:
    config = build(snapshot_mode=SnapshotMode.INITIAL, schema_name="shop")
    assert config["snapshot.mode"] == "initial"
    assert config["table.include.list"] == "shop.outbox_events"
    assert config["snapshot.select.statement.overrides"] == "shop.outbox_events"
    assert config["snapshot.select.statement.overrides.shop.outbox_events"] == (
        "SELECT * FROM shop.outbox_events WHERE published_at IS NULL ORDER BY id"
    )


def test_exactly_once_option() -> None:
    config = build(exactly_once=True)
    assert config["exactly.once.support"] == "required"
    assert config["transaction.boundary"] == "poll"


def test_converters_pass_bytes_through() -> None:
    config = build()
    assert config["key.converter"] == cdc.STRING_CONVERTER
    assert config["value.converter"] == cdc.BYTES_CONVERTER
    assert config["header.converter"] == cdc.BYTES_CONVERTER
    assert config["binary.handling.mode"] == "bytes"


def test_router_routes_by_topic_column_keys_by_aggregate_id() -> None:
    config = build()
    assert config["transforms"] == "heartbeats,outbox,envelope"
    assert config["transforms.outbox.type"] == "io.debezium.transforms.outbox.EventRouter"
    assert config["transforms.outbox.route.by.field"] == "topic"
    assert config["transforms.outbox.route.topic.replacement"] == "${routedByValue}"
    assert config["transforms.outbox.table.field.event.key"] == "aggregate_id"
    assert config["transforms.outbox.table.field.event.payload"] == "payload"
    assert config["transforms.outbox.table.expand.json.payload"] == "false"
    assert config["predicates.heartbeat.pattern"] == "__debezium-heartbeat\\..*"


def test_header_transform_follows_to_kafka_order() -> None:
    config = build()
    sample = StoredEvent(
        ce_id="i",
        ce_type="t",
        ce_source="s",
        ce_time="x",
        aggregate_type="a",
        aggregate_id="k",
        topic="t",
        content_type="c",
        payload=b"",
        headers={"user": "h"},
        traceparent="tp",
    )
    envelope_names = [name for name, _ in to_kafka(sample).headers if name != "user"]
    slots = config["transforms.envelope.headers"].split(",")
    assert [slot.split("=")[0] for slot in slots] == envelope_names
    assert slots[0] == f"{envelope.CE_SPECVERSION}={envelope.SPECVERSION}"
    placed = dict(
        p.split(":header:") for p in config["transforms.outbox.table.fields.additional.placement"].split(",")
    )
    # Every envelope header but the literal is placed by the router from its column.
    assert {v: k for k, v in placed.items() if v != cdc.USER_HEADERS} == cdc.HEADER_COLUMNS
    assert placed["headers"] == config["transforms.envelope.json.header"] == cdc.USER_HEADERS


def test_an_envelope_header_without_a_column_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(cdc.HEADER_COLUMNS, envelope.CE_SOURCE)
    with pytest.raises(ConfigurationError, match="ce_source"):
        build()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("slot_name", "Bad-Slot"),
        ("publication", "x y"),
        ("heartbeat_interval_ms", "-1"),
        ("snapshot_mode", "always"),
    ],
)
def test_invalid_settings_are_refused(field: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"OUTBOX_CDC_{field.upper()}", value)
    with pytest.raises(ValueError, match=field):
        CdcSettings()


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTBOX_CDC_EXACTLY_ONCE", "true")
    monkeypatch.setenv("OUTBOX_CDC_SLOT_NAME", "svc_slot")
    settings = CdcSettings()
    assert settings.exactly_once and settings.slot_name == "svc_slot"


def test_one_config_file_serves_relay_and_cdc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`outbox cdc --config` reads the top level and [cdc]; the polling relay skips [cdc] and the CDC
    commands skip [relay]. Flags beat the environment, which beats the file."""
    config = tmp_path / "outbox.toml"
    config.write_text(
        'database_url = "postgresql://svc:pw@db.internal:6543/shop"\n'
        '[relay]\nmode = "transactional"\n'
        '[cdc]\nslot_name = "shop_slot"\nconnector_name = "shop-outbox"\nheartbeat_interval_ms = 500\n'
    )
    for name in [n for n in os.environ if n.startswith("OUTBOX_")]:
        monkeypatch.delenv(name)  # the variables would beat the file
    monkeypatch.setenv("OUTBOX_CDC_HEARTBEAT_INTERVAL_MS", "2000")
    result = CliRunner().invoke(main, ["cdc", "--config", str(config), "config", "--exactly-once"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["name"] == "shop-outbox"
    assert body["config"]["slot.name"] == "shop_slot"
    assert body["config"]["database.hostname"] == "db.internal"
    assert body["config"]["heartbeat.interval.ms"] == "2000"  # environment beats file
    assert body["config"]["exactly.once.support"] == "required"  # flag
    _, relay = load_settings(config)
    assert relay.mode is RelayMode.TRANSACTIONAL


def test_bad_cdc_config_file_says_what_is_wrong(tmp_path: Path) -> None:
    config = tmp_path / "outbox.toml"
    config.write_text('[cdc]\nslot = "typo"\n')
    result = CliRunner().invoke(main, ["cdc", "--config", str(config), "config"])
    assert result.exit_code != 0
    assert "unknown CdcSettings keys" in result.output and "slot" in result.output
    config.write_text('cdc = "not a table"\n')
    result = CliRunner().invoke(main, ["cdc", "--config", str(config), "config"])
    assert result.exit_code != 0 and "[cdc]" in result.output


def test_cdc_config_masks_the_urls_password_and_prints_a_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("OUTBOX_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OUTBOX_DATABASE_URL", "postgresql://svc:s3cret@db.internal/shop")

    def password(*args: str) -> str:
        result = CliRunner().invoke(main, ["cdc", "config", *args])
        assert result.exit_code == 0, result.output
        return str(json.loads(result.output)["config"]["database.password"])

    assert password() == "********"
    assert password("--show-password") == "s3cret"
    monkeypatch.setenv("OUTBOX_CDC_DATABASE_PASSWORD", "${env:PGPASSWORD}")
    assert password() == "${env:PGPASSWORD}"  # a reference holds no secret
    assert build(database_password="${file:/run/secrets/db.properties:password}")["database.password"] == (
        "${file:/run/secrets/db.properties:password}"
    )


def test_a_literal_cdc_password_is_refused_with_what_to_do() -> None:
    with pytest.raises(
        ValueError, match=r"\$\{env:PGPASSWORD\}.*literal password belongs in the database URL"
    ):
        CdcSettings(database_password="s3cret")


@pytest.mark.parametrize(
    "command", [["register", "--no-wait"], ["status"], ["pause"], ["resume"], ["remove"]]
)
def test_cdc_commands_say_when_connect_cannot_be_reached(command: list[str]) -> None:
    # A closed loopback port: refused at once. Nothing else is touched before Connect answers (the
    # database URL is given, as a changing command needs, but never reached).
    unused = {"OUTBOX_DATABASE_URL": "postgresql://outbox@127.0.0.1:1/unused"}
    result = CliRunner().invoke(main, ["cdc", "--connect-url", "http://127.0.0.1:1", *command], env=unused)
    assert result.exit_code == 1
    assert "Kafka Connect at http://127.0.0.1:1 cannot be reached" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback


def test_registering_over_a_connector_of_another_source_is_refused() -> None:
    mine = build(slot_name="shop_outbox")
    cdc.refuse_repointing("shop", None, mine)  # new
    cdc.refuse_repointing(
        "shop", {**build(slot_name="shop_outbox", heartbeat_interval_ms=1), "name": "shop"}, mine
    )
    other_db = connector_config(
        OutboxSettings(database_url="postgresql://svc@db.internal:6543/billing"),
        CdcSettings(slot_name="billing"),
    )
    with pytest.raises(ConnectorConflictError) as refused:
        cdc.refuse_repointing("shop", other_db, mine)
    message = str(refused.value)
    assert (
        "streams database 'billing' on db.internal:6543 (table public.outbox_events, slot billing)" in message
    )
    assert "re-point it to database 'shop' on db.internal:6543" in message
    assert "database.dbname, slot.name" in message and "--replace" in message
    for other in (build(slot_name="another"), build(slot_name="shop_outbox", schema_name="billing")):
        with pytest.raises(ConnectorConflictError):
            cdc.refuse_repointing("shop", other, mine)
    with pytest.raises(ConnectorConflictError, match=r"connector class 'com\.example\.Sink'"):
        cdc.refuse_repointing("shop", {"connector.class": "com.example.Sink"}, mine)
