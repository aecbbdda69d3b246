"""A fresh database per test session, migrated with our Alembic scripts, dropped at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, pool, text

from outbox import migrations
from tests.outbox.models import Base


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
