"""Find and run outboxkit's Alembic migrations (the scripts ship in the wheel as outbox/_migrations).

`upgrade`, `downgrade` and `current` are the functions behind `outbox migrate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, create_engine, inspect, pool, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from outbox.errors import MigrationError
from outbox.schema import BRANCH_LABEL, TABLE, VERSION_TABLE
from outbox.urls import mask_url, sqlalchemy_url

T = TypeVar("T")
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
        said = str(err)
        if isinstance(err, DBAPIError) and err.orig is not None:  # not the SQL dump that follows
            said = f"{type(err.orig).__name__}: {' '.join(str(err.orig).split())}"
        raise MigrationError(f"migration failed: {mask_url(said)}") from err


@dataclass(frozen=True)
class Applied:
    """Our revisions applied to a database, and the version table that records them: ours
    (`outbox migrate`) or a service's own Alembic environment's (our versions in its locations)."""

    revisions: tuple[str, ...]
    version_table: str = VERSION_TABLE

    @property
    def by_service(self) -> bool:
        return self.version_table != VERSION_TABLE

    def describe(self) -> str:
        at = ", ".join(self.revisions) or "base"
        if self.by_service:
            return f"{at} (in version table {self.version_table} of your own Alembic environment)"
        return at


def our_revisions() -> frozenset[str]:
    """Every revision id of our migrations."""
    return frozenset(r.revision for r in ScriptDirectory(str(script_location())).walk_revisions())


def applied_revisions(connection: Connection) -> Applied:
    """Where our migrations stand on `connection`: in our version table, else in any other Alembic
    version table of the current schema (a table with a `version_num` column) that names ours."""
    ours = current_revisions(connection)
    if ours:
        return Applied(ours)
    candidates = connection.execute(
        text(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND column_name = 'version_num' AND table_name <> :ours ORDER BY table_name"
        ),
        {"ours": VERSION_TABLE},
    ).scalars()
    known = our_revisions()
    for table in list(candidates):
        quoted = connection.dialect.identifier_preparer.quote(table)
        found = [
            v for v in connection.execute(text(f"SELECT version_num FROM {quoted}")).scalars() if v in known
        ]
        if found:
            return Applied(tuple(sorted(found)), table)
    return Applied(())


def _check_owner(url: str) -> None:
    """Refuse to run our own environment where it would create or drop the tables a second time."""
    applied, exists = _on(url, lambda c: (applied_revisions(c), inspect(c).has_table(TABLE)))
    if applied.by_service:
        raise MigrationError(
            f"outboxkit's migrations were applied through your own Alembic environment (version table "
            f"{applied.version_table}, at {', '.join(applied.revisions)}): upgrade or downgrade them there, "
            f"e.g. `alembic upgrade heads`; `outbox migrate` records its revisions in {VERSION_TABLE} and "
            "would create the tables a second time. Use one way per database."
        )
    if exists and not applied.revisions:
        raise MigrationError(
            f"table {TABLE} exists but no Alembic version table records outboxkit's revisions (made by "
            "create_all() or by hand?): if the tables match a revision, record it without running it, "
            f"e.g. `alembic stamp outboxkit@head` in your Alembic environment; else drop them and run "
            "`outbox migrate upgrade` again"
        )


def upgrade(url: str, revision: str = "heads") -> None:
    """Migrate the database at `url` up to `revision` (default: the newest). MigrationError when
    our revisions are recorded by a service's own Alembic environment (upgrade them there)."""
    with _errors():
        _check_owner(url)
        command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate down to `revision` (`base` removes the outbox table; `-1` steps back once)."""
    with _errors():
        if not current(url):
            _check_owner(url)
        command.downgrade(alembic_config(url), revision)


def head_revisions() -> tuple[str, ...]:
    """The newest revision(s) of our migrations: what `upgrade` reaches."""
    return tuple(ScriptDirectory(str(script_location())).get_heads())


def current_revisions(connection: Connection) -> tuple[str, ...]:
    """The revisions of ours applied on `connection` by `outbox migrate` (empty: none)."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_heads()


def _on(url: str, read: Callable[[Connection], T]) -> T:
    with _errors():
        engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
        try:
            with engine.connect() as connection:
                return read(connection)
        finally:
            engine.dispose()


def current(url: str) -> tuple[str, ...]:
    """The revisions of ours applied to the database at `url` by `outbox migrate` (empty: none)."""
    return _on(url, current_revisions)


def applied(url: str) -> Applied:
    """Our revisions applied to the database at `url`, by `outbox migrate` or by a service's own
    Alembic environment."""
    return _on(url, applied_revisions)


__all__ = [
    "BRANCH_LABEL",
    "Applied",
    "alembic_config",
    "applied",
    "applied_revisions",
    "current",
    "current_revisions",
    "downgrade",
    "head_revisions",
    "our_revisions",
    "script_location",
    "sqlalchemy_url",
    "upgrade",
    "versions_location",
]
