"""Which database a command uses, and where its URL came from (issue 13 item 8): a command that
changes things refuses the built-in default (the local stack's URL) and names the one it uses; a
command that only reads uses the default with a note. docs/operations.md has the list."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from sqlalchemy.engine import make_url

from outbox import migrations
from tests.conftest import REPO
from tests.test_cli_urls import outbox

PROJECTOR = "outboxkit.examples.sites.projection:from_environment"
SOME_ID = "0190a3b2-1111-7000-8000-000000000000"

CHANGING = [
    ["migrate", "upgrade"],
    ["migrate", "downgrade", "base"],
    ["relay", "run"],
    ["relay", "quarantine", "requeue", SOME_ID],
    ["relay", "quarantine", "discard", SOME_ID],
    ["replay", "--all", "--no-wait"],
    ["projector", "run", PROJECTOR],
    ["projector", "rebuild", PROJECTOR],
    ["cdc", "register"],
    ["cdc", "remove"],
]


@pytest.mark.parametrize("command", CHANGING, ids=[" ".join(c[:3]) for c in CHANGING])
def test_a_command_that_changes_things_refuses_the_built_in_default(command: list[str]) -> None:
    # Refused before any connection: nothing here reaches the default URL's database.
    result = outbox(*command, env={"OUTBOX_CONNECT_URL": "http://127.0.0.1:1"})
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "no database URL given" in output and "does not fall back to the built-in default" in output
    assert "127.0.0.1:5432" in output and "Traceback" not in output


def test_a_command_that_only_reads_says_it_uses_the_default() -> None:
    result = outbox("cdc", "config")  # reads the URL, connects nowhere
    assert result.returncode == 0, result.stderr
    assert "note: no database URL given" in result.stderr
    assert "using the built-in default postgresql://outbox:***@127.0.0.1:5432/outbox" in result.stderr
    assert '"database.port": "5432"' in result.stdout


def test_a_changing_command_names_its_database_and_where_it_came_from(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    url = new_database()
    shown = make_url(url).render_as_string(hide_password=True)
    result = outbox("migrate", "upgrade", env={"OUTBOX_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert f"database {shown} (from OUTBOX_DATABASE_URL)" in result.stderr

    result = outbox("--database-url", url, "migrate", "downgrade", "base")
    assert f"database {shown} (from --database-url)" in result.stderr, result.stderr
    config = tmp_path / "outbox.toml"
    config.write_text(f'database_url = "{url}"\n')
    result = outbox("migrate", "upgrade", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert f"database {shown} (from database_url in {config})" in result.stderr


def test_a_daemon_logs_its_database_and_where_it_came_from(
    new_database: Callable[[], str], bootstrap_servers: str
) -> None:
    """The daemons' stderr is JSON logs: the database is said there, in the first lines."""
    url = new_database()
    migrations.upgrade(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOX_")}
    env.update(OUTBOX_DATABASE_URL=url, OUTBOX_KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers)
    proc = subprocess.Popen(
        [sys.executable, "-m", "outboxkit", "relay", "run", "--metrics-port", "0"],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        lines = [orjson.loads(proc.stderr.readline()) for _ in range(2)]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    said = next(line for line in lines if line["message"] == "database")
    assert said["database"] == make_url(url).render_as_string(hide_password=True)
    assert said["from"] == "OUTBOX_DATABASE_URL"
