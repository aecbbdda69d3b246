"""A projector refuses a database without its tables, with the fix, instead of dead-lettering every
event (issue 13 items 4 and 6)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Connection, Engine, text

from outbox import migrations
from outboxkit.examples.sites.projection import build_projector
from outboxkit.kafka.records import ReceivedEvent
from projectors.config import ProjectorConfig
from projectors.database import engine_for
from projectors.projector import Projector
from projectors.runtime import ProjectorRunner
from projectors.schema import MissingTablesError
from tests.projectors.conftest import SitesTopic, stored_total


@pytest.fixture
def migrated(new_database: Callable[[], str]) -> Iterator[Engine]:
    """A database with outboxkit's tables and no read model."""
    url = new_database()
    migrations.upgrade(url)
    engine = engine_for(url)
    yield engine
    engine.dispose()


def dead_lettered(runner: ProjectorRunner) -> float:
    return sum(
        s.value
        for m in runner.metrics.dead_lettered.collect()
        for s in m.samples
        if s.name.endswith("_total")
    )


def test_a_missing_read_model_table_is_refused_at_start(
    migrated: Engine, bootstrap_servers: str, sites_topic: SitesTopic, unique: Callable[[str], str]
) -> None:
    topic, _ = sites_topic("sites-noread", events=5, sites=2)
    runner = ProjectorRunner(build_projector(topic, name=unique("noread")), migrated, bootstrap_servers)
    with pytest.raises(MissingTablesError, match="read-model table site_summary does not exist") as raised:
        runner.run(threading.Event())
    assert "outbox projector rebuild" in str(raised.value)
    assert dead_lettered(runner) == 0


def test_a_handler_on_a_missing_table_stops_the_projector_instead_of_dead_lettering(
    migrated: Engine, bootstrap_servers: str, sites_topic: SitesTopic, unique: Callable[[str], str]
) -> None:
    """A projector that declares no metadata cannot be checked at start: the first event that
    meets the missing table stops it, and nothing is dead-lettered or skipped."""
    topic, _ = sites_topic("sites-nometa", events=5, sites=2)
    projector = Projector(unique("nometa"), [topic], config=ProjectorConfig(retry_backoff=0.05))

    @projector.handles("site.created", "site.owner_changed", "app.installed", "app.uninstalled")
    def write(event: ReceivedEvent, conn: Connection) -> None:
        conn.execute(text("INSERT INTO never_created (id) VALUES (:id)"), {"id": event.subject})

    runner = ProjectorRunner(projector, migrated, bootstrap_servers)
    with pytest.raises(MissingTablesError, match='relation "never_created" does not exist') as raised:
        runner.run(threading.Event())
    assert "outbox migrate upgrade" in str(raised.value)
    assert dead_lettered(runner) == 0
    assert stored_total(migrated, projector.name) == 0


def test_rebuild_and_the_dead_letters_cli_on_an_unmigrated_database_say_to_run_the_migrations(
    new_database: Callable[[], str], bootstrap_servers: str, new_topic: Callable[..., str]
) -> None:
    from click.testing import CliRunner

    from outboxkit.cli import main
    from projectors.rebuild import rebuild

    url, topic = new_database(), new_topic("sites-unmigrated")
    engine = engine_for(url)
    try:
        with pytest.raises(MissingTablesError, match=r"projector_offsets.*outbox migrate upgrade"):
            rebuild(build_projector(topic, name="unmigrated"), engine, bootstrap_servers)
    finally:
        engine.dispose()
    env = {"OUTBOX_DATABASE_URL": url, "SITES_TOPIC": topic}
    reference = "outboxkit.examples.sites.projection:from_environment"
    listed = CliRunner().invoke(main, ["projector", "dead-letters", "list", reference], env=env)
    assert listed.exit_code == 1, listed.output
    assert listed.output.startswith("Error: projector 'site-summary': table projector_offsets"), listed.output
    assert "alembic upgrade heads" in listed.output
