"""`outbox migrate upgrade|downgrade|current`: run outboxkit's own Alembic migrations."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click
import orjson

from outbox import migrations
from outbox.errors import OutboxError
from outboxkit.cli.settings import JSON_OUTPUT, CommandGroup, CommandSettings

T = TypeVar("T")

_URL = click.option(
    "--database-url",
    help="PostgreSQL URL, e.g. postgresql://user:password@host:5432/db (also postgres://, "
    "postgresql+psycopg:// or libpq's key=value form) [env OUTBOX_DATABASE_URL; default: the local "
    "stack's]; the `outbox --database-url` flag also works.",
)


def _run(action: str, func: Callable[..., T], *args: str) -> T:
    try:
        return func(*args)
    except OutboxError as err:
        raise click.ClickException(f"{action}: {err}") from err


def _database_url(ctx: click.Context, value: str | None, *, changes: bool) -> str:
    """This command's --database-url, else the `outbox` group's, else OUTBOX_DATABASE_URL, the
    config file or (`changes` False only) the default; refused (password masked) unless libpq
    takes it."""
    return CommandSettings(ctx, database_url=value).database_url(changes=changes)


def _echo_current(database_url: str, *, as_json: bool = False) -> None:
    applied = _run("current", migrations.applied, database_url)
    if as_json:
        heads = migrations.head_revisions()
        body = {
            "revisions": list(applied.revisions),
            "heads": list(heads),
            "version_table": applied.version_table,
        }
        click.echo(orjson.dumps(body).decode())
        return
    click.echo(f"outbox schema at {applied.describe()}")


@click.group(cls=CommandGroup)
def migrate() -> None:
    """Create, upgrade or remove the outbox table (Alembic; version table outbox_alembic_version)."""


@migrate.command()
@_URL
@click.argument("revision", default="heads")
@click.pass_context
def upgrade(ctx: click.Context, database_url: str | None, revision: str) -> None:
    """Upgrade to REVISION (default: the newest)."""
    url = _database_url(ctx, database_url, changes=True)
    _run("upgrade", migrations.upgrade, url, revision)
    _echo_current(url)


@migrate.command()
@_URL
@click.argument("revision")
@click.pass_context
def downgrade(ctx: click.Context, database_url: str | None, revision: str) -> None:
    """Downgrade to REVISION: `-1` steps back once, `base` drops the outbox table."""
    url = _database_url(ctx, database_url, changes=True)
    _run("downgrade", migrations.downgrade, url, revision)
    _echo_current(url)


@migrate.command()
@_URL
@JSON_OUTPUT
@click.pass_context
def current(ctx: click.Context, database_url: str | None, as_json: bool) -> None:
    """Print the applied revision (`base` when none); --json: `revisions` applied (empty: base)
    and the `heads` this version of outboxkit ships."""
    _echo_current(_database_url(ctx, database_url, changes=False), as_json=as_json)


if __name__ == "__main__":
    migrate()
