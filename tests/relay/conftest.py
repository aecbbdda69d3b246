"""Relay tests: a migrated database of their own, topics of their own, relays as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka.admin import NewTopic

from outbox import migrations
from tests.relay.connectors import CdcConnector
from tests.services import kafka_admin

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def relay_db(new_database: Callable[[], str]) -> str:
    url = new_database()
    migrations.upgrade(url)
    return url


@pytest.fixture
def clean_outbox(relay_db: str) -> str:
    with psycopg.connect(relay_db, autocommit=True) as conn:
        conn.execute("TRUNCATE outbox_events, outbox_quarantine")
        # Relays of earlier tests, and the lease connections of tests that took shards themselves,
        # must be gone: the table's leases, group and shard count would be theirs. Gone means their
        # locks are released, which is when the backend has exited: the timeout form of
        # pg_terminate_backend waits for that (a closed connection's backend may still be exiting).
        conn.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND (application_name LIKE 'outbox-relay%%'"
            " OR pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory'))"
        )
    return relay_db


class RelayProcess:
    """`outbox relay run` as a child process, to kill -9 and restart like an operator would."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RelayProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "outboxkit", "relay", "run"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )
        log.close()
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def wait_ready(self, timeout: float = 30) -> None:
        """Until the relay logged its start (its SIGTERM handler is installed by then)."""
        wait_for(lambda: b'"relay starting"' in self.log_path.read_bytes(), timeout, "the relay to start")

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM (once the relay is up) and its exit code."""
        assert self.proc is not None
        self.wait_ready()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture
def relay_factory(
    clean_outbox: str, bootstrap_servers: str, tmp_path: Path, unique: Callable[[str], str]
) -> Iterator[Callable[..., RelayProcess]]:
    """relay_factory(env_extra={...}, unset=[...], mode=..., shards=..., ...) -> a started relay
    process (keyword arguments become OUTBOX_RELAY_* variables; `unset` names variables to drop)."""
    started: list[RelayProcess] = []
    group = unique("relay")

    def make(
        env_extra: dict[str, str] | None = None, unset: Sequence[str] = (), **overrides: Any
    ) -> RelayProcess:
        env = dict(os.environ)
        env.update(
            {
                "OUTBOX_DATABASE_URL": clean_outbox,
                "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
                "OUTBOX_RELAY_GROUP": group,
                "OUTBOX_RELAY_POLL_INTERVAL": "0.2",
                "OUTBOX_RELAY_METRICS_PORT": "0",
                "OUTBOX_RELAY_PROGRESS_TOPIC": f"{group}-progress",
                "OUTBOX_RELAY_MESSAGE_TIMEOUT_MS": "10000",
            }
        )
        env.update({f"OUTBOX_RELAY_{k.upper()}": str(v) for k, v in overrides.items()})
        env.update(env_extra or {})
        for name in unset:
            env.pop(name, None)
        relay = RelayProcess(env, tmp_path / f"relay-{len(started)}.log").start()
        started.append(relay)
        return relay

    yield make
    for relay in started:
        relay.kill()
        # Shown by pytest only when the test failed: what the relay logged, to see why.
        print(f"--- {relay.log_path.name} (last 60 lines)")
        print("\n".join(relay.log_path.read_text(errors="replace").splitlines()[-60:]))


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def scrape(port: int, path: str) -> tuple[int, bytes]:
    """GET a relay's /metrics or /healthz: (status, body)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def outbox_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return unpublished(conn)


def unpublished(conn: psycopg.Connection[Any]) -> int:
    """Events in the outbox not yet published, on an open connection."""
    row = conn.execute("SELECT count(*) FROM outbox_events WHERE published_at IS NULL").fetchone()
    return int(row[0]) if row else 0


def new_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def cdc_db(new_database: Callable[[], str]) -> str:
    """A migrated database of its own for the CDC relay (the polling relay's would race it)."""
    url = new_database()
    migrations.upgrade(url)
    return url


@pytest.fixture
def cdc_factory(cdc_db: str, connect_url: str) -> Iterator[Callable[..., CdcConnector]]:
    """cdc_factory(exactly_once=..., **CdcSettings overrides) -> a registered, streaming connector
    on an emptied cdc_db; removed (slot and publication dropped) after the test."""
    with psycopg.connect(cdc_db, autocommit=True) as conn:
        conn.execute("TRUNCATE outbox_events, outbox_quarantine")
    started: list[CdcConnector] = []

    def make(exactly_once: bool = False, **overrides: Any) -> CdcConnector:
        connector = CdcConnector(cdc_db, connect_url, exactly_once=exactly_once, overrides=overrides)
        started.append(connector)
        return connector.register()

    yield make
    for connector in started:
        connector.remove()


@pytest.fixture
def make_topics(bootstrap_servers: str) -> Iterator[Callable[..., None]]:
    """make_topics(names, partitions=1): create topics up front (deleted after the test)."""
    admin = kafka_admin(bootstrap_servers)
    created: list[str] = []

    def make(names: Sequence[str], partitions: int = 1) -> None:
        futures = admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
        )
        for future in futures.values():
            future.result(timeout=30)
        created.extend(names)

    yield make
    if created:
        for future in admin.delete_topics(created).values():
            future.result(timeout=30)


def start_cdc_monitor(
    env: dict[str, str], port: int, log: Path, interval: float = 1.0
) -> subprocess.Popen[bytes]:
    """`outbox cdc monitor` as a child process serving on `port`; `env`: its OUTBOX_... settings."""
    command = ["cdc", "monitor", "--metrics-port", str(port), "--interval", str(interval)]
    with open(log, "ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "outboxkit", *command],
            env={**os.environ, **env},
            cwd=REPO,
            stderr=stderr,
            stdout=subprocess.DEVNULL,
        )


def start_relay(tmp_path: Path, database_url: str, bootstrap: str, mode: str, **extra: str) -> RelayProcess:
    """A relay on an isolated stack; `extra` keyword arguments become OUTBOX_RELAY_* variables."""
    env = dict(os.environ)
    env.update(
        {
            "OUTBOX_DATABASE_URL": database_url,
            "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "OUTBOX_RELAY_MODE": mode,
            "OUTBOX_RELAY_POLL_INTERVAL": "0.2",
            "OUTBOX_RELAY_METRICS_PORT": "0",
            "OUTBOX_RELAY_MAX_BACKOFF": "1",
            "OUTBOX_RELAY_MESSAGE_TIMEOUT_MS": "5000",
            "OUTBOX_RELAY_BATCH_SIZE": "50",
            **{f"OUTBOX_RELAY_{k.upper()}": v for k, v in extra.items()},
        }
    )
    return RelayProcess(env, tmp_path / f"relay-{mode}.log").start()
