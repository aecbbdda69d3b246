"""Kafka Connect of stack/ runs Debezium's PostgreSQL connector end to end."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.services import consume_all

POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"


def rest(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def test_rest_api_lists_debezium_postgres_connector(connect_url: str) -> None:
    plugins = rest("GET", f"{connect_url}/connector-plugins?connectorsOnly=true")
    classes = {p["class"] for p in plugins}
    assert POSTGRES_CONNECTOR in classes


def test_outbox_event_router_transform_is_available(connect_url: str) -> None:
    plugins = rest("GET", f"{connect_url}/connector-plugins?connectorsOnly=false")
    assert "io.debezium.transforms.outbox.EventRouter" in {p["class"] for p in plugins}


def test_outboxkit_headers_transform_is_available(connect_url: str) -> None:
    """stack/smt, built by `stack/stack up` and loaded as a plugin of its own (the CDC relay needs it)."""
    plugins = rest("GET", f"{connect_url}/connector-plugins?connectorsOnly=false")
    assert "io.outboxkit.connect.CloudEventsHeaders" in {p["class"] for p in plugins}


@pytest.fixture
def cdc_table(database_url: str) -> Iterator[str]:
    table = f"cdc_probe_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, note text NOT NULL)")
    yield table
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"DROP PUBLICATION IF EXISTS {table}_pub")


def wait_running(connect_url: str, name: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    status: Any = None
    while time.monotonic() < deadline:
        try:
            status = rest("GET", f"{connect_url}/connectors/{name}/status")
        except urllib.error.HTTPError:
            status = None
        if (
            status
            and status["connector"]["state"] == "RUNNING"
            and status["tasks"]
            and all(t["state"] == "RUNNING" for t in status["tasks"])
        ):
            return
        if status and any(t["state"] == "FAILED" for t in status["tasks"]):
            pytest.fail(f"connector task failed: {status['tasks'][0].get('trace', '')[:2000]}")
        time.sleep(0.5)
    pytest.fail(f"connector {name} not RUNNING after {timeout}s: {status}")


def test_debezium_streams_an_inserted_row_to_kafka(
    connect_url: str, database_url: str, bootstrap_servers: str, cdc_table: str
) -> None:
    db = conninfo_to_dict(database_url)
    name = f"{cdc_table}-connector"
    prefix = f"probe{uuid.uuid4().hex[:6]}"
    config = {
        "connector.class": POSTGRES_CONNECTOR,
        "tasks.max": "1",
        "database.hostname": db["host"],
        "database.port": str(db["port"]),
        "database.user": db["user"],
        "database.password": db["password"],
        "database.dbname": db["dbname"],
        "topic.prefix": prefix,
        "plugin.name": "pgoutput",
        "slot.name": cdc_table,
        "slot.drop.on.stop": "true",
        "publication.name": f"{cdc_table}_pub",
        "publication.autocreate.mode": "filtered",
        "table.include.list": f"public.{cdc_table}",
        "snapshot.mode": "no_data",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
    }
    rest("PUT", f"{connect_url}/connectors/{name}/config", config)
    try:
        wait_running(connect_url, name)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"INSERT INTO {cdc_table} (id, note) VALUES (1, 'grüße from postgres')")

        [record] = consume_all(bootstrap_servers, f"{prefix}.public.{cdc_table}", 1, timeout=60)
        change = json.loads(record.value())
        assert change["op"] == "c"
        assert change["after"] == {"id": 1, "note": "grüße from postgres"}
        assert json.loads(record.key()) == {"id": 1}
    finally:
        rest("DELETE", f"{connect_url}/connectors/{name}")
