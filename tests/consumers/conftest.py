"""A database for the consumer conformance suite's session: the toolkit's tables by their Alembic
revisions, and the test projector's own tables."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, pool

from outbox import migrations
from tests.consumers.projector_target import metadata


@pytest.fixture(scope="session")
def conformance_db(new_database: Callable[[], str]) -> Iterator[str]:
    url = new_database()
    migrations.upgrade(url)
    engine = create_engine(migrations.sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.begin() as conn:
        metadata.create_all(conn)  # a test read model: no Alembic revision of the toolkit's
    engine.dispose()
    yield url
