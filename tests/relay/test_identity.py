"""Two services, each with its own database, share one Kafka cluster: their relays must never act on
each other's progress. The loss this guards against: a transactional relay that "recovers" another
database's last batch deletes its own unpublished rows with the same ids, unpublished."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from outbox import migrations
from relay.identity import SourceIdentity, default_group
from tests.relay.conftest import RelayProcess, outbox_count, wait_for
from tests.relay.events import by_key, engine_for, outbox_for, write_numbered
from tests.services import read_all


@pytest.fixture
def second_db(new_database: Callable[[], str]) -> str:
    url = new_database()
    migrations.upgrade(url)
    return url


def test_a_relay_refuses_the_progress_of_another_database_and_loses_nothing(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    second_db: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    """Service A's and service B's relays are (wrongly) given one group and progress topic."""
    topic_a, topic_b = new_topic("svc-a"), new_topic("svc-b")
    write_numbered(engine_for(clean_outbox), outbox_for(topic_a), ["a"], 30)
    relay_a = relay_factory(mode="transactional")
    wait_for(lambda: outbox_count(clean_outbox) == 0, 30, "service A's outbox to drain")
    assert relay_a.terminate() == 0

    # Service B's ids are 1..30 too: A's last progress record names exactly B's unpublished rows.
    write_numbered(engine_for(second_db), outbox_for(topic_b), ["b"], 30)
    relay_b = relay_factory(env_extra={"OUTBOX_DATABASE_URL": second_db}, mode="transactional")
    wait_for(lambda: not relay_b.alive(), 60, "service B's relay to refuse")
    assert relay_b.proc is not None and relay_b.proc.returncode != 0
    said = relay_b.log_path.read_text()
    assert "another database" in said and "OUTBOX_RELAY_GROUP" in said

    assert outbox_count(second_db) == 30, "service B's events were finished without being published"
    assert read_all(bootstrap_servers, topic_b) == []


def test_relays_of_two_databases_get_their_own_groups_by_default(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    second_db: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    """With no group configured, each database's relays form their own group (own transactional
    ids, progress keys and leases), so both services publish everything, once."""
    topic_a, topic_b = new_topic("svc-a"), new_topic("svc-b")
    write_numbered(engine_for(clean_outbox), outbox_for(topic_a), ["a"], 30)
    write_numbered(engine_for(second_db), outbox_for(topic_b), ["b"], 30)
    shared_progress = {"OUTBOX_RELAY_PROGRESS_TOPIC": f"{topic_a}-progress"}
    relay_factory(env_extra=shared_progress, unset=["OUTBOX_RELAY_GROUP"], mode="transactional")
    relay_factory(
        env_extra={**shared_progress, "OUTBOX_DATABASE_URL": second_db},
        unset=["OUTBOX_RELAY_GROUP"],
        mode="transactional",
    )
    wait_for(lambda: outbox_count(clean_outbox) == 0, 30, "service A's outbox to drain")
    wait_for(lambda: outbox_count(second_db) == 0, 30, "service B's outbox to drain")
    assert by_key(read_all(bootstrap_servers, topic_a)) == {"a": list(range(30))}
    assert by_key(read_all(bootstrap_servers, topic_b)) == {"b": list(range(30))}


def test_the_default_group_names_the_database_and_differs_between_databases(
    clean_outbox: str, second_db: str
) -> None:
    with psycopg.connect(clean_outbox) as a, psycopg.connect(second_db) as b:
        one, other = SourceIdentity.of(a), SourceIdentity.of(b)
    assert one.system == other.system and one.database != other.database
    assert default_group(one) != default_group(other)
    assert one.database.replace("_", "-") in default_group(one)
    with psycopg.connect(clean_outbox) as again:
        assert default_group(SourceIdentity.of(again)) == default_group(one), "not stable"
