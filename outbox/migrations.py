"""Find and run outboxkit's Alembic migrations (the scripts ship in the wheel as outbox/_migrations).

`upgrade`, `downgrade` and `current` are the functions behind `outbox migrate`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, create_engine, pool
from sqlalchemy.exc import SQLAlchemyError

from outbox.errors import MigrationError
from outbox.schema import BRANCH_LABEL, VERSION_TABLE
from outbox.urls import mask_url, sqlalchemy_url

_PACKAGE = Path(__file__).resolve().parent


def script_location() -> Path:
    """The directory holding env.py and versions/: in the installed wheel, or in a source checkout."""
    for candidate in (_PACKAGE / "_migrations", _PACKAGE.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise MigrationError(
        f"outboxkit's migrations are missing (looked in {_PACKAGE / '_migrations'} and "
        f"{_PACKAGE.parent / 'migrations'}); reinstall outboxkit"
    )


def versions_location() -> Path:
    """Our versions/ directory, to add to a service's own Alembic `version_locations`."""
    return script_location() / "versions"


def alembic_config(url: str) -> Config:
    """An Alembic Config for our own environment against `url` (no alembic.ini needed).

    Raises ConfigurationError, before Alembic runs, when `url` is no PostgreSQL URL libpq takes."""
    sqlalchemy_url(url)
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.attributes["url"] = url
    return config


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except (CommandError, SQLAlchemyError) as err:
        raise MigrationError(f"migration failed: {mask_url(str(err))}") from err


def upgrade(url: str, revision: str = "heads") -> None:
    """Migrate the database at `url` up to `revision` (default: the newest)."""
    with _errors():
        command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate down to `revision` (`base` removes the outbox table; `-1` steps back once)."""
    with _errors():
        command.downgrade(alembic_config(url), revision)


def head_revisions() -> tuple[str, ...]:
    """The newest revision(s) of our migrations: what `upgrade` reaches."""
    return tuple(ScriptDirectory(str(script_location())).get_heads())


def current_revisions(connection: Connection) -> tuple[str, ...]:
    """The revisions of ours applied on `connection` by `outbox migrate` (empty: none)."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_heads()


def current(url: str) -> tuple[str, ...]:
    """The revisions of ours applied to the database at `url` (empty: none)."""
    with _errors():
        engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
        try:
            with engine.connect() as connection:
                return current_revisions(connection)
        finally:
            engine.dispose()


__all__ = [
    "BRANCH_LABEL",
    "alembic_config",
    "current",
    "current_revisions",
    "downgrade",
    "head_revisions",
    "script_location",
    "sqlalchemy_url",
    "upgrade",
    "versions_location",
]
