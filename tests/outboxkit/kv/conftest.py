"""KV store tests: topics of their own (deleted afterwards), on the real Kafka of the stack."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from tests.services import kafka_admin


@pytest.fixture
def kv_topic(bootstrap_servers: str, unique: Callable[[str], str]) -> Iterator[Callable[[], str]]:
    """kv_topic() -> a fresh topic name (the writer makes the topic); deleted afterwards."""
    names: list[str] = []

    def make() -> str:
        names.append(unique("kv"))
        return names[-1]

    yield make
    admin = kafka_admin(bootstrap_servers)
    existing = set(admin.list_topics(timeout=10).topics)
    gone = [name for name in names if name in existing]
    if gone:
        for future in admin.delete_topics(gone).values():
            with contextlib.suppress(Exception):  # already deleted by the test itself
                future.result(timeout=30)
