"""Wrong input to an `outbox` command is one clear line, never a traceback (issue 13 item 10): exit
code 2 with click's usage message for a bad argument, 1 for a setting or a situation."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import pytest

from tests.test_cli_urls import outbox

PROJECTOR = "outboxkit.examples.sites.projection:from_environment"


def one_clear_line(result: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert "Traceback" not in output, output
    assert all(word in output for word in words), output
    return output


@pytest.mark.parametrize(
    "args",
    [
        ["replay", "--event", "not-a-uuid", "--no-wait"],
        ["relay", "quarantine", "discard", "nope"],
        ["relay", "quarantine", "requeue", "0190a3b2-1111-7000-8000-000000000000", "nope"],
    ],
    ids=["replay --event", "quarantine discard", "quarantine requeue"],
)
def test_an_id_that_is_not_a_uuid_is_a_usage_error_before_any_database(
    args: list[str], database_url: str
) -> None:
    result = outbox(*args, env={"OUTBOX_DATABASE_URL": database_url})
    output = one_clear_line(result, 2, "is not a valid UUID")
    assert "PostgreSQL" not in output and "invalid input syntax" not in output


@pytest.mark.parametrize(
    "daemon", [["relay", "run"], ["projector", "run", PROJECTOR]], ids=["relay", "projector"]
)
def test_an_unknown_log_level_is_a_usage_error(daemon: list[str]) -> None:
    one_clear_line(outbox(*daemon, "--log-level", "nonsense"), 2, "Invalid value for '--log-level'")


def test_bad_json_in_a_variable_names_the_variable(database_url: str) -> None:
    result = outbox(
        "relay",
        "run",
        env={"OUTBOX_DATABASE_URL": database_url, "OUTBOX_RELAY_PRODUCER": '{"compression.type": lz4}'},
    )
    output = one_clear_line(result, 1, "OUTBOX_RELAY_PRODUCER", "is not valid JSON")
    assert "EnvSettingsSource" not in output
    result = outbox(
        "relay", "run", env={"OUTBOX_DATABASE_URL": database_url, "OUTBOX_KAFKA_CONNECTION": "{nope"}
    )
    one_clear_line(result, 1, "OUTBOX_KAFKA_CONNECTION", "is not valid JSON")


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    "daemon", [["relay", "run"], ["projector", "run", PROJECTOR]], ids=["relay", "projector"]
)
def test_a_taken_metrics_port_is_one_line_and_exit_1(
    daemon: list[str], taken_port: int, database_url: str, bootstrap_servers: str
) -> None:
    env = {"OUTBOX_DATABASE_URL": database_url, "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers}
    result = outbox(*daemon, "--metrics-port", str(taken_port), env=env)
    one_clear_line(result, 1, f"127.0.0.1:{taken_port}", "Address already in use", "--metrics-port")
