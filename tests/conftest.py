"""Fixtures that find the real services of `stack/stack` (or of OUTBOX_... variables).

A test that needs a service it cannot reach is skipped on a developer's machine, but fails under
CI=true: in CI a skip would hide a broken install.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from outbox import migrations
from tests.isolated import IsolatedStack
from tests.services import ServiceAddresses, kafka_admin, probe_connect, probe_kafka, probe_postgres

REPO = Path(__file__).resolve().parent.parent

# Property tests check logic, not speed: on a machine busy with the stack (2 cores shared with
# Kafka, Connect and PostgreSQL) an example can take longer than Hypothesis's default 200 ms
# deadline, which fails a correct test as flaky.
hypothesis_settings.register_profile("outboxkit", deadline=None)
hypothesis_settings.load_profile("outboxkit")


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A command run in-process (`outbox relay run` through CliRunner) configures the root logger
    for JSON on stderr; put it back, so no test's output depends on which tests ran before it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def unavailable(reason: str) -> None:
    """Fail under CI, skip elsewhere."""
    hint = " Start the stack with `stack/stack up`."
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"service unavailable in CI: {reason}.{hint}", pytrace=False)
    pytest.skip(f"service unavailable: {reason}.{hint}")


@pytest.fixture(scope="session")
def services() -> ServiceAddresses:
    return ServiceAddresses.discover(os.environ, REPO)


@pytest.fixture(scope="session")
def database_url(services: ServiceAddresses) -> str:
    problem = probe_postgres(services.database_url)
    if problem:
        unavailable(f"PostgreSQL at {services.database_url}: {problem}")
    return services.database_url


@pytest.fixture(scope="session")
def bootstrap_servers(services: ServiceAddresses) -> str:
    problem = probe_kafka(services.bootstrap_servers)
    if problem:
        unavailable(f"Kafka at {services.bootstrap_servers}: {problem}")
    return services.bootstrap_servers


@pytest.fixture(scope="session")
def connect_url(services: ServiceAddresses, bootstrap_servers: str) -> str:
    problem = probe_connect(services.connect_url)
    if problem:
        unavailable(f"Kafka Connect at {services.connect_url}: {problem}")
    return services.connect_url


@pytest.fixture
def unique() -> Callable[[str], str]:
    """unique("orders") -> "orders-1a2b3c4d": names that never collide across tests and runs."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def new_topic(bootstrap_servers: str, unique: Callable[[str], str]) -> Iterator[Callable[..., str]]:
    """Create a fresh topic (deleted afterwards): new_topic(partitions=1, config={...}) -> name."""
    from confluent_kafka.admin import NewTopic

    admin = kafka_admin(bootstrap_servers)
    created: list[str] = []

    def make(prefix: str = "test", partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = unique(prefix)
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})]
        )
        futures[name].result(timeout=30)
        created.append(name)
        return name

    yield make
    if created:
        for future in admin.delete_topics(created).values():
            future.result(timeout=30)


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
def secured() -> Iterator[IsolatedStack]:
    """An isolated Kafka that also listens for SASL/PLAIN clients (tests.isolated.SASL_LOGIN), shared
    by the tests of clusters that require a login; the tests read back over its plaintext listener."""
    stack = IsolatedStack(sasl=True)
    started = stack.up("kafka")
    assert started.returncode == 0, started.stderr
    yield stack
    stack.remove()
