"""A fresh database per test session, migrated with our Alembic scripts, dropped at the end."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, pool, text
from sqlalchemy.engine import make_url

from outbox import migrations
from tests.outbox.models import Base


@pytest.fixture(scope="session")
def new_database(database_url: str) -> Iterator[Callable[[], str]]:
    """new_database() -> URL of an empty database with a random name; all are dropped at the end."""
    admin = create_engine(
        migrations.sqlalchemy_url(database_url), isolation_level="AUTOCOMMIT", poolclass=pool.NullPool
    )
    created: list[str] = []

    def make() -> str:
        name = f"outbox_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return make_url(database_url).set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for name in created:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def outbox_url(new_database: Callable[[], str]) -> str:
    """A database with the outbox schema (our migrations) and the tests' domain tables."""
    url = new_database()
    migrations.upgrade(url)
    engine = create_engine(migrations.sqlalchemy_url(url), poolclass=pool.NullPool)
    Base.metadata.create_all(engine)  # the tests' own domain tables; the outbox is Alembic's
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def shared_engine(outbox_url: str) -> Iterator[Engine]:
    engine = create_engine(migrations.sqlalchemy_url(outbox_url))
    yield engine
    engine.dispose()


@pytest.fixture
def engine(shared_engine: Engine) -> Engine:
    """The test database, emptied of events and domain rows."""
    with shared_engine.begin() as conn:
        conn.execute(text("TRUNCATE outbox_events, orders, customers"))
    return shared_engine


def outbox_rows(engine: Engine) -> list[dict[str, Any]]:
    """Every outbox row, in id order."""
    with engine.connect() as conn:
        result = conn.execute(text("SELECT * FROM outbox_events ORDER BY id"))
        return [dict(row._mapping) for row in result]


def count_rows(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
