"""The Kafka Connect worker running the CDC relay is killed (kill -9) and restarted while events flow:
nothing lost, per-aggregate order kept, and with exactly-once no duplicate for read_committed readers.

On an isolated stack instance (own PostgreSQL, Kafka and Connect), so the shared Connect keeps serving.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from confluent_kafka.admin import NewTopic

from outbox import migrations
from relay.errors import ConnectError
from tests.isolated import IsolatedStack
from tests.relay.connectors import CdcConnector
from tests.relay.events import assert_complete_in_order, engine_for, outbox_for, write_rounds
from tests.services import consume_all, kafka_admin

AGGREGATES = [f"agg-{i}" for i in range(8)]
ROUNDS = 120


@pytest.fixture(scope="module")
def isolated() -> Iterator[IsolatedStack]:
    stack = IsolatedStack()
    started = stack.up("postgres", "kafka", "connect")
    assert started.returncode == 0, started.stdout + started.stderr
    yield stack
    stack.remove()


def connect_url(stack: IsolatedStack) -> str:
    return f"http://127.0.0.1:{stack.env['OUTBOX_STACK_CONNECT_PORT']}"


def kill_connect(stack: IsolatedStack) -> None:
    pid = int((stack.state / "run" / "connect.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError("the Connect worker survived kill -9")


def restart_connect(stack: IsolatedStack) -> None:
    """`stack/stack up` for Connect, tried three times: once, in a full-suite run under load, the
    restart failed (the error was then hidden by the clean-up). Loss and order are checked anyway."""
    outputs = []
    for _ in range(3):
        restarted = stack.up("connect")
        if restarted.returncode == 0:
            return
        outputs.append(restarted.stdout + restarted.stderr)
        time.sleep(2.0)
    raise AssertionError("\n---\n".join(outputs))


def new_outbox_database(stack: IsolatedStack) -> str:
    name = f"cdc_crash_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = stack.database_url.rsplit("/", 1)[0] + f"/{name}"
    migrations.upgrade(url)
    return url


@pytest.mark.parametrize("exactly_once", [True, False], ids=["exactly-once", "at-least-once"])
def test_connect_worker_killed_and_restarted_while_events_flow(
    exactly_once: bool, isolated: IsolatedStack
) -> None:
    url = new_outbox_database(isolated)
    topic = f"cdc-crash-{uuid.uuid4().hex[:8]}"
    admin = kafka_admin(isolated.bootstrap_servers)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(timeout=30)
    connector = CdcConnector(url, connect_url(isolated), exactly_once=exactly_once).register()
    engine, outbox = engine_for(url), outbox_for(topic)
    writer = threading.Thread(
        target=write_rounds, args=(engine, outbox, AGGREGATES, 0, ROUNDS, 0.04), daemon=True
    )
    writer.start()
    try:
        # Some events are through, more are in flight: kill the worker, let writes go on, restart.
        assert consume_all(isolated.bootstrap_servers, topic, len(AGGREGATES) * 5, timeout=60)
        kill_connect(isolated)
        time.sleep(1.0)
        restart_connect(isolated)
        writer.join(timeout=120)
        assert not writer.is_alive()
        connector.wait_slot_active(timeout=120)

        total = len(AGGREGATES) * ROUNDS
        records = consume_all(isolated.bootstrap_servers, topic, total, timeout=120)
        assert_complete_in_order(records, AGGREGATES, ROUNDS, exactly_once=exactly_once)
        if exactly_once:
            assert len(records) == total
    finally:
        engine.dispose()
        # The stack is thrown away after the module; a failed clean-up must not hide the failure.
        with contextlib.suppress(ConnectError):
            connector.remove()
