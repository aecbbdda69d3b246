"""The tables a projector needs, checked before it consumes: a missing one is a setup step not
done (migrations not run, read model never created), never the fault of an event, so the projector
refuses with the fix instead of dead-lettering every event it reads."""

from __future__ import annotations

from sqlalchemy import Connection, inspect
from sqlalchemy.exc import DBAPIError

from outbox.schema import RUN_MIGRATIONS
from projectors.errors import ProjectorError
from projectors.projector import Projector
from projectors.tracking import TRACKING_TABLES

SCHEMA_SQLSTATES = frozenset({"42P01", "42703", "3F000"})  # undefined table, column, schema
MIGRATE = RUN_MIGRATIONS
CREATE_READ_MODEL = (
    "create them with your own migration (e.g. Alembic autogenerate from the projector's metadata), "
    "or build them from the topic with `outbox projector rebuild NAME`"
)


class MissingTablesError(ProjectorError):
    """A table the projector needs does not exist in its database."""


def check_tracking_tables(conn: Connection, projector: Projector) -> None:
    """Raise MissingTablesError naming the missing tables of outboxkit's migrations and the fix."""
    inspector = inspect(conn)
    ours = [t for t in TRACKING_TABLES if not inspector.has_table(t)]
    if ours:
        raise MissingTablesError(
            f"projector {projector.name!r}: table {', '.join(ours)} does not exist: {MIGRATE}"
        )


def check_tables(conn: Connection, projector: Projector) -> None:
    """Raise MissingTablesError naming the missing tracking or read-model tables and the fix."""
    check_tracking_tables(conn, projector)
    inspector = inspect(conn)
    tables = projector.metadata.sorted_tables if projector.metadata is not None else []
    missing = [t.name for t in tables if not inspector.has_table(t.name, schema=t.schema)]
    if missing:
        raise MissingTablesError(
            f"projector {projector.name!r}: read-model table {', '.join(missing)} does not exist: "
            f"{CREATE_READ_MODEL}"
        )


def schema_problem(error: BaseException) -> str | None:
    """What a database error says about the schema (a missing table, column or schema), or None
    when it may be the event's fault."""
    if isinstance(error, DBAPIError) and getattr(error.orig, "sqlstate", None) in SCHEMA_SQLSTATES:
        return " ".join(str(error.orig).split())
    return None
