"""A fresh database for the session (with the projector tables applied by their Alembic revision),
and helpers to run projectors in threads or processes. (Killed, restarted and rebalanced projector
processes are the consumer conformance suite's cases: tests/consumers/.)"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from outbox import migrations
from outboxkit.examples.sites.events import SitesHistory, emit
from outboxkit.examples.sites.read_model import create_read_model, metadata
from projectors.database import engine_for
from projectors.projector import Projector
from projectors.runtime import ProjectorRunner

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def projector_db(database_url: str) -> Iterator[str]:
    """URL of a database created for this session and dropped after it."""
    name = f"outboxkit_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    migrations.upgrade(url)  # the toolkit's own tables, projector offsets included
    yield url
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def engine(projector_db: str) -> Iterator[Engine]:
    engine = engine_for(projector_db)
    yield engine
    engine.dispose()


@pytest.fixture
def sites_db(engine: Engine) -> Engine:
    """The engine, with an empty `site_summary` read model."""
    with engine.begin() as conn:
        metadata.drop_all(conn)
        create_read_model(conn)
    return engine


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def stored_total(engine: Engine, projector: str) -> int:
    """Sum of the projector's stored next offsets (the count of applied records on a fresh topic)."""
    with engine.connect() as conn:
        value = conn.execute(
            text("SELECT coalesce(sum(next_offset), 0) FROM projector_offsets WHERE projector = :p"),
            {"p": projector},
        ).scalar_one()
    return int(value)


@dataclass
class Running:
    runner: ProjectorRunner
    thread: threading.Thread


@contextmanager
def running(projector: Projector, engine: Engine, bootstrap: str, **options: Any) -> Iterator[Running]:
    """Run a projector in a thread for the duration of the block; re-raise what stopped it.
    `options` go to ProjectorRunner (metrics=, tracer=)."""
    runner = ProjectorRunner(projector, engine, bootstrap, **options)
    stop = threading.Event()
    failures: list[BaseException] = []

    def target() -> None:
        try:
            runner.run(stop)
        except BaseException as err:
            failures.append(err)

    thread = threading.Thread(target=target, name=f"projector-{projector.name}")
    thread.start()
    try:
        yield Running(runner, thread)
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive(), "projector thread did not stop"
    if failures:
        raise failures[0]


def projector_process(
    reference: str,
    database_url: str,
    bootstrap: str,
    env: dict[str, str],
    *args: str,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """`outbox projector run REFERENCE` as a child process; its stderr (the JSON log) goes to
    `log` when given."""
    environment = {
        **os.environ,
        "OUTBOX_DATABASE_URL": database_url,
        "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "PYTHONPATH": str(REPO),
        **env,
    }
    stderr = open(log, "ab") if log is not None else None  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "outboxkit", "projector", "run", reference, *args],
            cwd=REPO,
            env=environment,
            # Inherited stderr by default: pytest's fd capture keeps the child's log and shows it
            # when a test fails (a pipe nobody reads could fill up and block the child).
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    finally:
        if stderr is not None:
            stderr.close()


SitesTopic = Callable[..., tuple[str, SitesHistory]]


@pytest.fixture
def sites_topic(bootstrap_servers: str, new_topic: Callable[..., str]) -> SitesTopic:
    """sites_topic(prefix, partitions=, events=, sites=, seed=) -> (a fresh topic holding `events`
    site events, their history with the expected read model)."""

    def make(
        prefix: str, *, partitions: int = 1, events: int = 100, sites: int = 10, seed: int = 0
    ) -> tuple[str, SitesHistory]:
        topic = new_topic(prefix, partitions=partitions)
        history = SitesHistory(seed=seed)
        emit(bootstrap_servers, topic, history.generate(events, sites=sites))
        return topic, history

    return make


def project(projector: Projector, engine: Engine, bootstrap: str, total: int) -> None:
    """Run the projector until its stored offsets add up to `total`, then stop it."""
    with running(projector, engine, bootstrap):
        wait_until(lambda: stored_total(engine, projector.name) == total, what=f"{total} records applied")
