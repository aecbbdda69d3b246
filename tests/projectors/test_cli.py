"""`outbox projector status|rebuild|run` through click's CliRunner, against the real services."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import CliRunner
from confluent_kafka.admin import NewPartitions

from examples.sites.events import SitesHistory, emit
from examples.sites.projection import build_projector
from outboxkit.projector_cli import projector as projector_group
from tests.projectors.conftest import running, stored_total, wait_until
from tests.services import kafka_admin

REFERENCE = "examples.sites.projection:from_environment"


@pytest.fixture
def cli_env(projector_db: str, bootstrap_servers: str) -> Callable[[str, str], dict[str, str]]:
    return lambda topic, name: {
        "OUTBOX_DATABASE_URL": projector_db,
        "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        "SITES_TOPIC": topic,
        "SITES_PROJECTOR": name,
    }


def test_status_and_rebuild(
    sites_db: object,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
    unique: Callable[[str], str],
    cli_env: Callable[[str, str], dict[str, str]],
) -> None:
    from sqlalchemy import Engine

    assert isinstance(sites_db, Engine)
    topic, name = new_topic("sites-cli", partitions=2), unique("cli")
    history = SitesHistory(seed=8)
    emit(bootstrap_servers, topic, history.generate(300, sites=20))
    cli = CliRunner()
    env = cli_env(topic, name)

    before = cli.invoke(projector_group, ["status", REFERENCE], env=env)
    assert before.exit_code == 0, before.output
    assert f"projector {name} (group outboxkit-projector-{name})" in before.output
    assert before.output.strip().endswith("total lag 300")

    with running(build_projector(topic, name=name), sites_db, bootstrap_servers):
        wait_until(lambda: stored_total(sites_db, name) == 300, what="applied")
    after = cli.invoke(projector_group, ["status", REFERENCE], env=env)
    assert after.exit_code == 0, after.output
    lines = [line.split() for line in after.output.splitlines()[2:-1]]
    assert [(t, p) for t, p, *_ in lines] == [(topic, "0"), (topic, "1")]
    assert all(stored == high and lag == "0" for *_, stored, high, lag in lines)
    assert after.output.strip().endswith("total lag 0")

    rebuilt = cli.invoke(projector_group, ["rebuild", REFERENCE], env=env)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert f"rebuilt {name} from 300 records and swapped it in" in rebuilt.output


def test_unknown_projector_is_a_usage_error(cli_env: Callable[[str, str], dict[str, str]]) -> None:
    result = CliRunner().invoke(
        projector_group, ["status", "examples.nowhere:projector"], env=cli_env("t", "n")
    )
    assert result.exit_code == 2
    assert "cannot import 'examples.nowhere'" in result.output


def test_run_refuses_a_topic_whose_partition_count_changed(
    sites_db: object,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
    unique: Callable[[str], str],
    cli_env: Callable[[str, str], dict[str, str]],
) -> None:
    from sqlalchemy import Engine

    assert isinstance(sites_db, Engine)
    topic, name = new_topic("sites-grow", partitions=2), unique("grow")
    emit(bootstrap_servers, topic, SitesHistory(seed=10).generate(50, sites=5))
    with running(build_projector(topic, name=name), sites_db, bootstrap_servers):
        wait_until(lambda: stored_total(sites_db, name) == 50, what="applied")
    admin = kafka_admin(bootstrap_servers)  # kept alive until the future resolves
    admin.create_partitions([NewPartitions(topic, 4)])[topic].result(30)

    result = CliRunner().invoke(projector_group, ["run", REFERENCE], env=cli_env(topic, name))
    assert result.exit_code == 1
    assert f"topic '{topic}' has 4 partitions" in result.output
    assert "Rebuild the read model" in result.output
