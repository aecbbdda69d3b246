"""`outbox migrate upgrade|downgrade|current`: run outboxkit's own Alembic migrations."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from outbox import migrations
from outbox.config import OutboxSettings
from outbox.errors import OutboxError

T = TypeVar("T")

_URL = click.option(
    "--database-url",
    envvar="OUTBOX_DATABASE_URL",
    default=OutboxSettings.model_fields["database_url"].default,
    show_default="OUTBOX_DATABASE_URL, else the local stack's",
    help="PostgreSQL URL, e.g. postgresql://user:password@host:5432/db.",
)


def _run(action: str, func: Callable[..., T], *args: str) -> T:
    try:
        return func(*args)
    except OutboxError as err:
        raise click.ClickException(f"{action}: {err}") from err


def _echo_current(database_url: str) -> None:
    click.echo(f"outbox schema at {', '.join(_run('current', migrations.current, database_url)) or 'base'}")


@click.group()
def migrate() -> None:
    """Create, upgrade or remove the outbox table (Alembic; version table outbox_alembic_version)."""


@migrate.command()
@_URL
@click.argument("revision", default="heads")
def upgrade(database_url: str, revision: str) -> None:
    """Upgrade to REVISION (default: the newest)."""
    _run("upgrade", migrations.upgrade, database_url, revision)
    _echo_current(database_url)


@migrate.command()
@_URL
@click.argument("revision")
def downgrade(database_url: str, revision: str) -> None:
    """Downgrade to REVISION: `-1` steps back once, `base` drops the outbox table."""
    _run("downgrade", migrations.downgrade, database_url, revision)
    _echo_current(database_url)


@migrate.command()
@_URL
def current(database_url: str) -> None:
    """Print the applied revision (`base` when none)."""
    _echo_current(database_url)


if __name__ == "__main__":
    migrate()
