"""Alembic environment of outboxkit's own migrations, used by `outbox migrate` (outbox.migrations).

A service that runs our migrations from its own Alembic environment does not use this file: it
adds our `versions/` directory to its `version_locations` (see docs/write-side.md).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from outbox.migrations import sqlalchemy_url
from outbox.schema import VERSION_TABLE

config = context.config


def run_offline() -> None:
    context.configure(
        url=sqlalchemy_url(config.attributes["url"]),
        literal_binds=True,
        version_table=VERSION_TABLE,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online(connection: Connection) -> None:
    context.configure(connection=connection, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
elif "connection" in config.attributes:
    run_online(config.attributes["connection"])
else:
    engine = create_engine(sqlalchemy_url(config.attributes["url"]), poolclass=pool.NullPool)
    with engine.connect() as conn:
        run_online(conn)
    engine.dispose()
