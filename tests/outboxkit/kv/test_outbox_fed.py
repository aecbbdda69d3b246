"""A KV store fed through the outbox: a service changes its row and the row's KV entry in one
database transaction (key = KV key); a rolled-back transaction changes nothing, and a delete
(outbox.TOMBSTONE) reaches readers as a delete, through the polling relay and through Debezium."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, pool, text

from outbox import TOMBSTONE, Event, OutboxSettings, migrations, publish
from outboxkit.kv import KVStore, KVWriter, Versioned
from relay.polling import PollingRelay
from relay.settings import RelaySettings
from tests.relay.connectors import CdcConnector


def set_theme(conn: Connection, topic: str, site: str, theme: str) -> None:
    conn.execute(
        text("INSERT INTO site_themes VALUES (:s, :t) ON CONFLICT (site) DO UPDATE SET theme = :t"),
        {"s": site, "t": theme},
    )
    publish(
        conn,
        Event(
            type="site.theme.set",
            aggregate_type="site",
            aggregate_id=site,
            payload={"theme": theme},
            topic=topic,
        ),
    )


def remove_site(conn: Connection, topic: str, site: str) -> None:
    conn.execute(text("DELETE FROM site_themes WHERE site = :s"), {"s": site})
    publish(
        conn,
        Event(type="site.removed", aggregate_type="site", aggregate_id=site, payload=TOMBSTONE, topic=topic),
    )


@contextmanager
def relay_running(
    kind: str, database_url: str, bootstrap_servers: str, connect_url: str | None
) -> Iterator[None]:
    if kind == "polling":
        settings = OutboxSettings(database_url=database_url, kafka_bootstrap_servers=bootstrap_servers)
        relay = PollingRelay(
            settings, RelaySettings(group=f"kv-{uuid.uuid4().hex[:8]}", metrics_port=0, poll_interval=0.1)
        )
        thread = threading.Thread(target=relay.run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            relay.stop()
            thread.join(30)
    else:
        assert connect_url is not None
        connector = CdcConnector(database_url, connect_url, exactly_once=True).register()
        try:
            yield
        finally:
            connector.remove()


@pytest.mark.parametrize("kind", ["polling", "cdc"])
def test_rows_and_kv_entries_change_together_and_deletes_arrive_as_deletes(
    kind: str,
    request: pytest.FixtureRequest,
    new_database: Callable[[], str],
    bootstrap_servers: str,
    kv_topic: Callable[[], str],
) -> None:
    connect_url = request.getfixturevalue("connect_url") if kind == "cdc" else None
    database_url = new_database()
    migrations.upgrade(database_url)
    engine = create_engine(migrations.sqlalchemy_url(database_url), poolclass=pool.NullPool)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE site_themes (site text PRIMARY KEY, theme text NOT NULL)"))
    topic = kv_topic()
    KVWriter(topic, kafka=bootstrap_servers, partitions=3)  # the compacted topic the outbox feeds
    changes: list[tuple[str, Any, Any]] = []

    def changed(key: str, old: Versioned | None, new: Versioned | None) -> None:
        changes.append((key, old and old.value, new and new.value))

    try:
        with (
            relay_running(kind, database_url, bootstrap_servers, connect_url),
            KVStore(topic, kafka=bootstrap_servers) as kv,
        ):
            kv.on_change(changed)
            kv.wait_ready(30)
            with engine.begin() as conn:
                set_theme(conn, topic, "site-a", "dark")
                set_theme(conn, topic, "site-b", "light")
            with pytest.raises(RuntimeError), engine.begin() as conn:
                set_theme(conn, topic, "site-c", "never")
                set_theme(conn, topic, "site-b", "never")
                raise RuntimeError("the request failed: roll back")
            with engine.begin() as conn:
                remove_site(conn, topic, "site-a")
            with engine.begin() as conn:
                set_theme(conn, topic, "site-z", "last")  # once it is here, everything before is
            wait_until(lambda: "site-z" in kv, f"the {kind} relay's records never reached the reader")
            state = dict(kv.items())
        with engine.connect() as conn:
            rows = dict(conn.execute(text("SELECT site, theme FROM site_themes")).all())
    finally:
        engine.dispose()
    assert state == {"site-b": {"theme": "light"}, "site-z": {"theme": "last"}}
    assert {k: v["theme"] for k, v in state.items()} == rows, "the KV store says what the table says"
    assert ("site-a", {"theme": "dark"}, None) in changes, "the delete arrived as a delete"
    assert not any(key == "site-c" or new == {"theme": "never"} for key, _old, new in changes)


def wait_until(done: Callable[[], bool], why: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, why
        time.sleep(0.05)
