"""A cluster that asks clients to log in: every Kafka client of the relay logs in, whether the
login comes from the shared Kafka settings (OUTBOX_KAFKA_...) or, as before them, from the
producer's connection settings (OUTBOX_RELAY_PRODUCER).

Kafka runs on an isolated stack instance with a SASL/PLAIN listener beside the plaintext one; the
relay is given only the SASL listener, the test reads back over the plaintext one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import psycopg
import pytest

from outbox import migrations
from relay.settings import RelaySettings
from tests.isolated import SASL_LOGIN, SASL_LOGIN_ENV, IsolatedStack
from tests.relay.conftest import RelayProcess, outbox_count, start_relay, wait_for
from tests.relay.events import assert_complete_in_order, engine_for, outbox_for, write_numbered
from tests.services import consume_all

AGGREGATES = [f"agg-{i}" for i in range(5)]
PER_AGGREGATE = 20
LOGIN = SASL_LOGIN


def relay_over_sasl(
    stack: IsolatedStack, tmp_path: Path, url: str, topic: str, mode: str, login: dict[str, str]
) -> RelayProcess:
    """A migrated outbox with 20 events per aggregate for `topic`, and a relay on the SASL listener."""
    migrations.upgrade(url)
    write_numbered(engine_for(url), outbox_for(topic), AGGREGATES, PER_AGGREGATE)
    if not login:  # the login comes from the OUTBOX_KAFKA_... variables
        return start_relay(tmp_path, url, stack.sasl_bootstrap_servers, mode)
    return start_relay(
        tmp_path, url, stack.sasl_bootstrap_servers, mode, producer=orjson.dumps(login).decode()
    )


def quarantined(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM outbox_quarantine").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(
    ("mode", "login_from"),
    [
        ("idempotent", "kafka"),
        ("transactional", "kafka"),
        ("idempotent", "producer"),
        ("transactional", "producer"),
    ],
)
def test_the_relay_publishes_to_a_cluster_that_requires_a_login(
    mode: str,
    login_from: str,
    secured: IsolatedStack,
    tmp_path: Path,
    new_database: Callable[[], str],
    unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, topic = new_database(), unique("secured")  # created on first use: preflight asks over SASL too
    if login_from == "kafka":
        for name, value in SASL_LOGIN_ENV.items():
            monkeypatch.setenv(name, value)
    relay = relay_over_sasl(secured, tmp_path, url, topic, mode, LOGIN if login_from == "producer" else {})
    wait_for(lambda: outbox_count(url) == 0, 60, "the outbox to drain over the SASL listener")
    assert quarantined(url) == 0
    assert relay.terminate() == 0
    records = consume_all(secured.bootstrap_servers, topic, len(AGGREGATES) * PER_AGGREGATE, timeout=30)
    assert_complete_in_order(records, AGGREGATES, PER_AGGREGATE, exactly_once=(mode == "transactional"))


def test_a_wrong_password_is_reported_and_nothing_is_lost(
    secured: IsolatedStack,
    tmp_path: Path,
    new_database: Callable[[], str],
    unique: Callable[[str], str],
) -> None:
    url, wrong = new_database(), {**LOGIN, "sasl.password": "not-the-password"}
    relay = relay_over_sasl(secured, tmp_path, url, unique("secured"), "transactional", wrong)
    wait_for(lambda: "Authentication failed" in relay.log_path.read_text(), 60, "the login to be refused")
    assert relay.alive()
    assert outbox_count(url) == len(AGGREGATES) * PER_AGGREGATE
    assert quarantined(url) == 0
    assert relay.terminate() == 0


def test_only_the_connection_settings_of_the_producer_go_to_the_other_clients() -> None:
    settings = RelaySettings(producer={**LOGIN, "ssl.ca.location": "/ca.pem", "linger.ms": "5", "acks": "1"})
    assert settings.connection == {**LOGIN, "ssl.ca.location": "/ca.pem"}
