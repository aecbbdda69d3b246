from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine

from outbox import migrations
from outboxkit.examples.sites.read_model import create_read_model
from tests.relay.events import engine_for


@pytest.fixture
def database(new_database: Callable[[], str]) -> Iterator[tuple[str, Engine]]:
    """A migrated database with the sites read model: the relay's outbox and a projector's tables."""
    url = new_database()
    migrations.upgrade(url)
    engine = engine_for(url)
    with engine.begin() as conn:
        create_read_model(conn)
    yield url, engine
    engine.dispose()
