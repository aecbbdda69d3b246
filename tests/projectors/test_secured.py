"""A cluster that asks clients to log in: the projector's consumer, its dead-letter producer, the
status command and a rebuild all log in with the shared Kafka settings (OUTBOX_KAFKA_...).

Before the shared Kafka layer only the relay's clients were given a login; a projector on such a
cluster could not read, dead-letter or report its lag. Kafka runs on an isolated stack with a
SASL/PLAIN listener; the projector is given only that listener, the test writes and reads back
over the plaintext one.
"""

from __future__ import annotations

from collections.abc import Callable

from click.testing import CliRunner
from confluent_kafka.admin import NewTopic
from sqlalchemy import Engine

from outboxkit.cli.projector import projector as projector_group
from outboxkit.examples.sites.events import SitesHistory, emit
from outboxkit.examples.sites.read_model import all_summaries
from tests.isolated import SASL_LOGIN_ENV, IsolatedStack
from tests.projectors.conftest import projector_process, stored_total, wait_until
from tests.services import consume_all, kafka_admin

REFERENCE = "outboxkit.examples.sites.projection:from_environment"
EVENTS = 120


def test_a_projector_runs_dead_letters_reports_and_rebuilds_over_a_login(
    secured: IsolatedStack, projector_db: str, sites_db: Engine, unique: Callable[[str], str]
) -> None:
    topic, name = unique("sites-secured"), unique("secured")
    admin = kafka_admin(secured.bootstrap_servers)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    history = SitesHistory(seed=3)
    records = history.generate(EVENTS, sites=10)
    poison = (b"site-0", b"not an outboxkit event", [])  # no envelope headers: dead-lettered
    emit(secured.bootstrap_servers, topic, [*records[:60], poison, *records[60:]])

    env = {
        **SASL_LOGIN_ENV,
        "OUTBOX_DATABASE_URL": projector_db,
        "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": secured.sasl_bootstrap_servers,
        "SITES_TOPIC": topic,
        "SITES_PROJECTOR": name,
    }
    process = projector_process(REFERENCE, projector_db, secured.sasl_bootstrap_servers, env)
    try:
        wait_until(lambda: stored_total(sites_db, name) == EVENTS + 1, 90, "every record over SASL")
    finally:
        process.terminate()
        assert process.wait(30) == 0
    with sites_db.connect() as conn:
        assert all_summaries(conn) == history.expected
    [dead] = consume_all(secured.bootstrap_servers, f"{topic}.dlq", 1, timeout=30)
    assert dead.value() == b"not an outboxkit event"
    assert dict(dead.headers() or [])["dlq_projector"] == name.encode()

    cli = CliRunner()
    status = cli.invoke(projector_group, ["status", REFERENCE], env=env)
    assert status.exit_code == 0, status.output
    assert status.output.strip().endswith("total lag 0")

    rebuilt = cli.invoke(projector_group, ["rebuild", REFERENCE], env=env)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert f"rebuilt {name} from {EVENTS + 1} records" in rebuilt.output
    with sites_db.connect() as conn:
        assert all_summaries(conn) == history.expected


def test_without_the_login_the_projector_says_why(
    secured: IsolatedStack, projector_db: str, sites_db: Engine, unique: Callable[[str], str]
) -> None:
    """The control: the same command without OUTBOX_KAFKA_SASL_... cannot read the topic."""
    topic, name = unique("sites-nologin"), unique("nologin")
    admin = kafka_admin(secured.bootstrap_servers)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    env = {
        "OUTBOX_DATABASE_URL": projector_db,
        "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": secured.sasl_bootstrap_servers,
        "SITES_TOPIC": topic,
        "SITES_PROJECTOR": name,
    }
    status = CliRunner().invoke(projector_group, ["status", REFERENCE], env=env)
    assert status.exit_code != 0
    assert f"cannot read the metadata of topic {topic!r}" in status.output
    assert "OUTBOX_KAFKA_SECURITY_PROTOCOL and OUTBOX_KAFKA_SASL_" in status.output
