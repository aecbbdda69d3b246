"""Database URLs in every form libpq takes are accepted; a bad one is refused by every command with a
clear message that never shows its password (the real CLI, run as `python -m outboxkit`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from sqlalchemy.engine import make_url

from outbox import migrations
from tests.conftest import REPO

SECRET = "hunter2-secret"
PROJECTOR = "outboxkit.examples.sites.projection:from_environment"

# Every command that reads the database URL, with arguments that get it as far as the settings.
COMMANDS = [
    ["relay", "status"],
    ["relay", "run", "--metrics-port", "0"],
    ["relay", "quarantine", "list"],
    ["replay", "--all", "--no-wait"],
    ["cdc", "config"],
    ["cdc", "status"],
    ["projector", "status", PROJECTOR],
    ["demo"],
]
MIGRATE = [["migrate", "current"], ["migrate", "upgrade"]]

BAD_URLS = [
    f"mysql://shop:{SECRET}@db.internal/shop",
    f"postgresql+asyncpg://shop:{SECRET}@db.internal/shop",
    f"http://shop:{SECRET}@db.internal/shop",
    f"postgresql://shop:{SECRET}@db.internal/shop?nonsense=1",
    f"host=db.internal password={SECRET} nonsense",
]


def outbox(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m outboxkit ARGS` with only the given OUTBOX_... variables."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOX_")}
    return subprocess.run(
        [sys.executable, "-m", "outboxkit", *args],
        env={**base, "SITES_TOPIC": "sites", **(env or {})},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_refused(result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert SECRET not in output
    assert "Traceback" not in output, output
    assert "database_url" in output or "database URL" in output, output
    assert "***" in output or "password=" not in output, output


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c[:2]) for c in COMMANDS])
def test_a_bad_database_url_flag_is_refused_without_its_password(command: list[str], url: str) -> None:
    assert_refused(outbox("--database-url", url, *command))


@pytest.mark.parametrize(
    "command", [*COMMANDS, *MIGRATE], ids=[" ".join(c[:2]) for c in [*COMMANDS, *MIGRATE]]
)
def test_a_bad_database_url_variable_is_refused_without_its_password(command: list[str]) -> None:
    assert_refused(outbox(*command, env={"OUTBOX_DATABASE_URL": BAD_URLS[0]}))


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("command", MIGRATE, ids=[" ".join(c) for c in MIGRATE])
def test_migrate_refuses_a_bad_url_without_its_password(command: list[str], url: str) -> None:
    assert_refused(outbox(*command, "--database-url", url))


def test_a_literal_cdc_password_is_not_printed() -> None:
    result = outbox("cdc", "config", env={"OUTBOX_CDC_DATABASE_PASSWORD": SECRET})
    assert result.returncode != 0 and SECRET not in result.stdout + result.stderr
    assert "database_password" in result.stderr and "${env:PGPASSWORD}" in result.stderr


def test_an_unreachable_connect_url_is_shown_without_its_password() -> None:
    result = outbox("cdc", "--connect-url", f"http://admin:{SECRET}@127.0.0.1:1", "pause")
    assert result.returncode == 1
    assert "Kafka Connect at http://admin:***@127.0.0.1:1 cannot be reached" in result.stderr
    assert SECRET not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def migrated(new_database: Callable[[], str]) -> str:
    url = new_database()
    migrations.upgrade(url)
    return url


def test_a_wrong_password_is_a_clear_error_without_the_password(migrated: str) -> None:
    url = make_url(migrated).set(password=SECRET).render_as_string(hide_password=False)
    for command in (["relay", "status"], ["replay", "--all", "--no-wait"], ["relay", "quarantine", "list"]):
        result = outbox("--database-url", url, *command)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr and SECRET not in result.stdout + result.stderr
        assert "cannot connect to PostgreSQL" in result.stderr, result.stderr


def spellings(url: str) -> dict[str, str]:
    """The same database written as libpq, psycopg and SQLAlchemy users write it."""
    parsed = make_url(url)
    rest = url.split("://", 1)[1]
    return {
        "postgresql": url,
        "postgres": f"postgres://{rest}",
        "postgresql+psycopg": f"postgresql+psycopg://{rest}",
        "postgresql+psycopg2": f"postgresql+psycopg2://{rest}",
        "keywords": (
            f"host={parsed.host} port={parsed.port} dbname={parsed.database} "
            f"user={parsed.username} password={parsed.password}"
        ),
    }


@pytest.mark.parametrize(
    "spelling", ["postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2", "keywords"]
)
def test_every_libpq_spelling_works_with_every_client(migrated: str, spelling: str) -> None:
    """psycopg (relay, replay), SQLAlchemy (migrate, projectors) and the CDC config all take it."""
    url = spellings(migrated)[spelling]
    status = outbox("--database-url", url, "relay", "status")
    assert status.returncode == 0, status.stderr
    assert "backlog:            0 unpublished events" in status.stdout
    current = outbox("migrate", "current", "--database-url", url)
    assert current.returncode == 0, current.stderr
    assert current.stdout.strip() == f"outbox schema at {migrations.head_revisions()[0]}"
    config = outbox("--database-url", url, "cdc", "config")
    assert config.returncode == 0, config.stderr
    assert f'"database.dbname": "{make_url(migrated).database}"' in config.stdout
