"""`outbox migrate upgrade|downgrade|current`: run outboxkit's own Alembic migrations."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click
from click.core import ParameterSource

from outbox import migrations
from outbox.config import OutboxSettings
from outbox.errors import OutboxError
from outbox.urls import libpq_url

T = TypeVar("T")

_URL = click.option(
    "--database-url",
    envvar="OUTBOX_DATABASE_URL",
    default=OutboxSettings.model_fields["database_url"].default,
    show_default="OUTBOX_DATABASE_URL, else the local stack's",
    help="PostgreSQL URL, e.g. postgresql://user:password@host:5432/db (also postgres://, "
    "postgresql+psycopg:// or libpq's key=value form); the `outbox --database-url` flag also works.",
)


def _run(action: str, func: Callable[..., T], *args: str) -> T:
    try:
        return func(*args)
    except OutboxError as err:
        raise click.ClickException(f"{action}: {err}") from err


def _database_url(ctx: click.Context, value: str) -> str:
    """This command's --database-url, else the `outbox` group's, else OUTBOX_DATABASE_URL or the
    default; refused (password masked) unless libpq takes it."""
    group_flag = (ctx.find_object(dict) or {}).get("database_url")
    if group_flag and ctx.get_parameter_source("database_url") is not ParameterSource.COMMANDLINE:
        value = group_flag
    try:
        return libpq_url(value)
    except OutboxError as err:
        raise click.ClickException(f"{ctx.info_name}: {err}") from err


def _echo_current(database_url: str) -> None:
    click.echo(f"outbox schema at {', '.join(_run('current', migrations.current, database_url)) or 'base'}")


@click.group()
def migrate() -> None:
    """Create, upgrade or remove the outbox table (Alembic; version table outbox_alembic_version)."""


@migrate.command()
@_URL
@click.argument("revision", default="heads")
@click.pass_context
def upgrade(ctx: click.Context, database_url: str, revision: str) -> None:
    """Upgrade to REVISION (default: the newest)."""
    database_url = _database_url(ctx, database_url)
    _run("upgrade", migrations.upgrade, database_url, revision)
    _echo_current(database_url)


@migrate.command()
@_URL
@click.argument("revision")
@click.pass_context
def downgrade(ctx: click.Context, database_url: str, revision: str) -> None:
    """Downgrade to REVISION: `-1` steps back once, `base` drops the outbox table."""
    database_url = _database_url(ctx, database_url)
    _run("downgrade", migrations.downgrade, database_url, revision)
    _echo_current(database_url)


@migrate.command()
@_URL
@click.pass_context
def current(ctx: click.Context, database_url: str) -> None:
    """Print the applied revision (`base` when none)."""
    _echo_current(_database_url(ctx, database_url))


if __name__ == "__main__":
    migrate()
