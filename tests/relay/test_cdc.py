"""The CDC relay's operations against the real stack: CLI, CDC retention, heartbeats, hand-over snapshot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import text
from sqlalchemy.engine import make_url

from outbox import Event, Outbox, OutboxSettings, migrations, publish, publish_many
from outbox.envelope import to_kafka
from outboxkit.cli import main
from relay.connect import ConnectClient
from relay.slot import slot_lag
from relay.status import CdcStatusSource
from tests.relay.conformance import as_record
from tests.relay.conftest import wait_for
from tests.relay.connectors import CdcConnector
from tests.relay.events import engine_for, outbox_for
from tests.services import consume_all


def watermarks(bootstrap: str, topic: str) -> tuple[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return int(low), int(high)
    finally:
        consumer.close()


def event(n: int, aggregate: str = "a-1") -> Event:
    return Event(type="test.cdc", aggregate_type="a", aggregate_id=aggregate, payload={"n": n})


def test_cli_register_status_pause_resume_remove(
    cdc_db: str, connect_url: str, bootstrap_servers: str, new_topic: Callable[..., str]
) -> None:
    tag = CdcConnector(cdc_db, connect_url).tag
    env = {
        "OUTBOX_DATABASE_URL": cdc_db,
        "OUTBOX_CONNECT_URL": connect_url,
        "OUTBOX_CDC_CONNECTOR_NAME": f"cli-{tag}",
        "OUTBOX_CDC_SLOT_NAME": f"cli_{tag}",
        "OUTBOX_CDC_PUBLICATION": f"cli_{tag}",
        "OUTBOX_CDC_TOPIC_PREFIX": f"cli-{tag}",
        "OUTBOX_CDC_HEARTBEAT_INTERVAL_MS": "1000",
    }
    runner = CliRunner()

    def outbox(*args: str) -> str:
        result = runner.invoke(main, ["cdc", *args], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout if "--json" in args else result.output  # JSON on stdout, logs on stderr

    topic = new_topic("cli")
    engine, writer = engine_for(cdc_db), outbox_for(topic)
    assert f'"slot.name": "cli_{tag}"' in outbox("config", "--exactly-once")
    try:
        assert "running" in outbox("register")
        wait_for(lambda: "active" in outbox("status").split("slot:")[1], 60, "the slot to be active")
        shown = outbox("status")
        assert f"connector:  cli-{tag} RUNNING" in shown and "task 0:     RUNNING" in shown
        assert "bytes of WAL retained" in shown
        metrics = outbox("status", "--metrics")
        assert f'outbox_cdc_slot_retained_wal_bytes{{slot="cli_{tag}"}}' in metrics
        assert f'outbox_cdc_connector_running{{connector="cli-{tag}"}} 1.0' in metrics
        # The command prints what the status source reads (WAL positions move with each heartbeat).
        source = CdcStatusSource(connect_url, cdc_db, f"cli-{tag}", f"cli_{tag}").snapshot()
        printed = orjson.loads(outbox("status", "--json"))
        assert printed["connector"] == source["connector"]
        assert printed["connector"]["running"] and printed["connector"]["tasks"][0]["state"] == "RUNNING"
        assert printed["slot"]["slot"] == source["slot"]["slot"] == f"cli_{tag}"
        assert printed["slot"]["active"] is source["slot"]["active"] is True

        outbox("pause")
        wait_for(lambda: "PAUSED" in outbox("status"), 60, "the connector to pause")
        with engine.begin() as conn:
            publish(conn, event(1), outbox=writer)
        assert consume_all(bootstrap_servers, topic, 1, timeout=3) == []  # paused: held in the WAL
        outbox("resume")
        [record] = consume_all(bootstrap_servers, topic, 1, timeout=60)
        assert record.value() == b'{"n":1}'
    finally:
        removed = outbox("remove")
    assert f"connector cli-{tag} removed" in removed and f"slot cli_{tag} dropped" in removed
    assert "not registered" in outbox("status")
    gone = orjson.loads(outbox("status", "--json"))
    assert gone == CdcStatusSource(connect_url, cdc_db, f"cli-{tag}", f"cli_{tag}").snapshot()
    assert (gone["connector"], gone["slot"]) == (None, None)
    with psycopg.connect(cdc_db) as conn:
        assert slot_lag(conn, f"cli_{tag}") is None
        assert conn.execute(
            "SELECT count(*) FROM pg_publication WHERE pubname = %s", (f"cli_{tag}",)
        ).fetchone() == (0,)


def test_cdc_retention_deletes_rows_at_once_and_still_publishes(
    cdc_db: str,
    cdc_factory: Callable[..., CdcConnector],
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    topic = new_topic("cdc-delete")
    settings = OutboxSettings(database_url=cdc_db, retention="cdc_delete", topic_template=topic)  # type: ignore[arg-type]
    writer = Outbox.from_settings(settings)
    assert writer.delete_after_insert
    connector = cdc_factory()
    engine = engine_for(cdc_db)
    events = [event(n, f"a-{n % 3}") for n in range(10)]
    with engine.begin() as conn:
        publish(conn, events[0], outbox=writer)
        assert conn.execute(text("SELECT count(*) FROM outbox_events")).scalar_one() == 0
    with engine.begin() as conn:
        publish_many(conn, events[1:], outbox=writer)

    records = consume_all(bootstrap_servers, topic, 10, timeout=60)
    assert [as_record(r) for r in records] == [to_kafka(writer.prepare(e)) for e in events]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM outbox_events")).scalar_one() == 0
    connector.wait_slot_active()  # the router dropped the DELETEs; the task did not fail


def test_heartbeats_let_the_slot_advance_while_the_outbox_is_idle(
    cdc_db: str, cdc_factory: Callable[..., CdcConnector]
) -> None:
    connector = cdc_factory(heartbeat_interval_ms=500)
    slot = connector.settings.slot_name
    with psycopg.connect(cdc_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS cdc_busy_neighbour (id serial PRIMARY KEY, pad text)")
        start = slot_lag(conn, slot)
        assert start is not None
        # Other tables write ~8 MB of WAL; the outbox stays idle.
        for _ in range(8):
            conn.execute(
                "INSERT INTO cdc_busy_neighbour (pad) SELECT repeat('x', 1000) FROM generate_series(1, 1000)"
            )
        written = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)"
            " FROM pg_replication_slots WHERE slot_name = %s",
            (slot,),
        ).fetchone()
        assert written is not None and int(written[0]) > 4_000_000

        def caught_up() -> bool:
            lag = slot_lag(conn, slot)
            return lag is not None and lag.unconfirmed_bytes < 1_000_000

        wait_for(caught_up, 60, "heartbeats to move the slot's confirmed position past the idle WAL")
        conn.execute("DROP TABLE cdc_busy_neighbour")


def test_initial_snapshot_hands_over_the_unpublished_rows_in_order(
    cdc_db: str,
    cdc_factory: Callable[..., CdcConnector],
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    """Switching from polling: rows the polling relay already published (kept, published_at set)
    stay behind; the unpublished ones go first, in id order, then streaming continues."""
    topic = new_topic("handover")
    writer = outbox_for(topic)
    engine = engine_for(cdc_db)
    events = [event(n, f"a-{n % 2}") for n in range(8)]
    with engine.begin() as conn:
        publish_many(conn, events[:6], outbox=writer)
        conn.execute(
            text(
                "UPDATE outbox_events SET published_at = now()"
                " WHERE id IN (SELECT id FROM outbox_events ORDER BY id LIMIT 2)"
            )
        )
    cdc_factory(snapshot_mode="initial")
    with engine.begin() as conn:
        publish_many(conn, events[6:], outbox=writer)
    records = consume_all(bootstrap_servers, topic, 6, timeout=60)
    assert [as_record(r) for r in records] == [to_kafka(writer.prepare(e)) for e in events[2:]]


@pytest.mark.parametrize("exactly_once", [True])
def test_exactly_once_connector_writes_transactionally(
    exactly_once: bool,
    cdc_factory: Callable[..., CdcConnector],
    cdc_db: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    """exactly.once.support=required is accepted by the worker; read_committed sees every event once
    (the crash test, tests/relay/test_cdc_crash.py, kills the worker in this mode)."""
    topic = new_topic("eos")
    connector = cdc_factory(exactly_once=exactly_once)
    assert connector.config()["exactly.once.support"] == "required"
    engine, writer = engine_for(cdc_db), outbox_for(topic)
    with engine.begin() as conn:
        publish_many(conn, [event(n) for n in range(20)], outbox=writer)
    committed = consume_all(bootstrap_servers, topic, 20, timeout=60)
    assert [r.value() for r in committed] == [f'{{"n":{n}}}'.encode() for n in range(20)]
    # Transactional writes: a commit marker follows the last record, so the log ends past it.
    # (Debezium may split the 20 records over two polls, i.e. two transactions, whose marker then
    # takes an offset between them: the last record's offset is 19 or more.)
    low, high = watermarks(bootstrap_servers, topic)
    assert low == 0 and committed[-1].offset() >= 19
    assert high > committed[-1].offset() + 1


def test_the_database_password_can_stay_a_secret_of_the_worker(
    cdc_db: str,
    cdc_factory: Callable[..., CdcConnector],
    connect_url: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    """OUTBOX_CDC_DATABASE_PASSWORD=${file:...}: the worker resolves it (stack/ and compose enable the
    env and file config providers); Connect stores and shows the reference, never the password."""
    password = make_url(cdc_db).password
    assert password
    secrets = tmp_path / "db.properties"
    secrets.write_text(f"password={password}\n")
    reference = f"${{file:{secrets}:password}}"
    connector = cdc_factory(database_password=reference)  # running and streaming: it logged in
    with ConnectClient(connect_url) as client:
        stored = client.config(connector.settings.connector_name)
    assert stored is not None and stored["database.password"] == reference

    topic = new_topic("cdc-secret")
    engine, outbox = engine_for(cdc_db), outbox_for(topic)
    with engine.begin() as conn:
        publish(conn, event(1, "a-1"), outbox=outbox)
    [record] = consume_all(bootstrap_servers, topic, 1, timeout=60)
    assert record.key() == b"a-1"


def test_register_refuses_to_repoint_another_services_connector(
    cdc_db: str,
    cdc_factory: Callable[..., CdcConnector],
    connect_url: str,
    new_database: Callable[[], str],
) -> None:
    """Two services, one connector name: the second registration must not silently take the first
    service's connector over (its events would stop flowing). Re-registering the same service's
    connector stays an idempotent update; --replace moves it on purpose."""
    service = cdc_factory()
    other_db = new_database()
    migrations.upgrade(other_db)
    name, settings = service.settings.connector_name, service.settings
    env = {
        "OUTBOX_CONNECT_URL": connect_url,
        "OUTBOX_CDC_CONNECTOR_NAME": name,
        "OUTBOX_CDC_SLOT_NAME": settings.slot_name,
        "OUTBOX_CDC_PUBLICATION": settings.publication,
        "OUTBOX_CDC_TOPIC_PREFIX": settings.topic_prefix,
        "OUTBOX_CDC_HEARTBEAT_INTERVAL_MS": "2000",
    }

    def register(database_url: str, *flags: str) -> Any:
        return CliRunner().invoke(
            main, ["cdc", "register", "--no-wait", *flags], env={**env, "OUTBOX_DATABASE_URL": database_url}
        )

    def registered_database() -> str | None:
        with ConnectClient(connect_url) as client:
            config = client.config(name)
        return config["database.dbname"] if config else None

    service_db, other_name = make_url(cdc_db).database, make_url(other_db).database
    moved = CdcConnector(other_db, connect_url, tag=service.tag)  # its slot, if it ever streams there
    try:
        refused = register(other_db)
        assert refused.exit_code == 1, refused.output
        assert f"connector {name!r} already exists" in refused.output
        assert f"database {service_db!r}" in refused.output and "public.outbox_events" in refused.output
        assert f"database {other_name!r}" in refused.output
        assert "OUTBOX_CDC_CONNECTOR_NAME" in refused.output and "--replace" in refused.output
        assert refused.exception is None or isinstance(refused.exception, SystemExit)
        assert registered_database() == service_db  # nothing changed

        again = register(cdc_db)  # the same service: an update
        assert again.exit_code == 0, again.output
        with ConnectClient(connect_url) as client:
            assert (client.config(name) or {})["heartbeat.interval.ms"] == "2000"

        replaced = register(other_db, "--replace")
        assert replaced.exit_code == 0, replaced.output
        assert registered_database() == other_name
    finally:
        moved.remove()  # the connector, and the slot it may have made in the other database
