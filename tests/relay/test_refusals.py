"""Settings that can never work are refused at start, with the reason, exit code 1 and one error
line (issue 13 item 5); what can heal (PostgreSQL or Kafka down) is waited for, degraded
(tests/relay/test_operations.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.engine import make_url

from outbox.errors import ConfigurationError
from outboxkit.kafka import clients
from tests.daemons import json_log
from tests.relay.conftest import RelayProcess


def refusal(relay: RelayProcess) -> str:
    assert relay.proc is not None
    assert relay.proc.wait(30) == 1
    errors = [e for e in json_log(relay.log_path.read_text()) if e["level"] == "error"]
    assert len(errors) == 1, errors
    assert "Traceback" not in relay.log_path.read_text()
    return str(errors[0]["message"])


def test_an_unknown_librdkafka_property_is_refused_at_start(
    relay_factory: Callable[..., RelayProcess],
) -> None:
    relay = relay_factory(env_extra={"OUTBOX_RELAY_PRODUCER": '{"compresion.type": "lz4"}'})
    said = refusal(relay)
    assert 'No such configuration property: "compresion.type"' in said, said
    assert "OUTBOX_RELAY_PRODUCER" in said, said


def test_a_database_that_does_not_exist_is_refused_at_start(
    relay_factory: Callable[..., RelayProcess], database_url: str
) -> None:
    url = make_url(database_url).set(database="no_such_database_13").render_as_string(hide_password=False)
    said = refusal(relay_factory(env_extra={"OUTBOX_DATABASE_URL": url}))
    assert 'database "no_such_database_13" does not exist' in said, said
    assert "create the database, or correct OUTBOX_DATABASE_URL" in said, said


def test_a_value_librdkafka_refuses_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r'^from the test: .*Invalid value "lz5"'):
        clients.check_producer_config({"compression.type": "lz5"}, "from the test")
