"""A projector remembers what it dead-lettered: a rebuild does not publish a poison event to the
dead-letter topic again, and `outbox projector dead-letters` lists, replays (after the fix) and
discards them (issue 13 item 18)."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from outboxkit.cli import main
from outboxkit.examples.sites.events import SitesHistory
from outboxkit.examples.sites.read_model import all_summaries
from projectors.dead_letters import listed
from projectors.rebuild import rebuild
from tests.projectors.conftest import SitesTopic, project
from tests.projectors.failing_target import poisoned
from tests.services import consume_all

REFERENCE = "tests.projectors.failing_target:poisoned"


Poisoned = tuple[str, str, SitesHistory, str]
"""(projector name, topic, its history, the poisoned site)"""


@pytest.fixture
def projected(
    sites_db: Engine,
    projector_db: str,
    bootstrap_servers: str,
    sites_topic: SitesTopic,
    unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Poisoned]:
    """projected(prefix, partitions, events, sites, seed): a topic projected by the poisoned sites
    projector (its first site poisoned) until every record is applied or dead-lettered; the
    environment names them for the CLI."""

    def make(prefix: str, *, partitions: int, events: int, sites: int, seed: int) -> Poisoned:
        topic, history = sites_topic(prefix, partitions=partitions, events=events, sites=sites, seed=seed)
        name, poison = unique(prefix), sorted(history.expected)[0]
        for key, value in {
            "SITES_TOPIC": topic,
            "SITES_PROJECTOR": name,
            "POISON_SITE": poison,
            "OUTBOX_DATABASE_URL": projector_db,
            "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        }.items():
            monkeypatch.setenv(key, value)
        project(poisoned(), sites_db, bootstrap_servers, events)
        return name, topic, history, poison

    return make


def test_rebuild_does_not_dead_letter_again_and_the_cli_replays_after_the_fix(
    sites_db: Engine, bootstrap_servers: str, projected: Callable[..., Poisoned]
) -> None:
    name, topic, history, poison = projected("sites-poison", partitions=2, events=60, sites=6, seed=18)
    poison_count = sum(1 for key, _, _ in history.records if key.decode() == poison)
    dlq = f"{topic}.dlq"
    with sites_db.connect() as conn:
        first = listed(conn, name)
    assert len(first) == poison_count and {d.event_type for d in first} >= {"site.created"}
    assert len(consume_all(bootstrap_servers, dlq, poison_count)) == poison_count

    rebuild(poisoned(), sites_db, bootstrap_servers)  # the handlers still fail
    with sites_db.connect() as conn:
        again = listed(conn, name)
    assert [d.event_id for d in again] == [d.event_id for d in first]
    assert len(consume_all(bootstrap_servers, dlq, poison_count)) == poison_count  # no duplicates

    cli = CliRunner()
    shown = cli.invoke(main, ["projector", "dead-letters", "list", REFERENCE])
    assert shown.exit_code == 0, shown.output
    assert shown.output.strip().endswith(f"{poison_count} dead-lettered") and "poison: site" in shown.output

    # Replayed before the fix: each fails again and stays listed.
    failed = cli.invoke(main, ["projector", "dead-letters", "replay", REFERENCE, str(first[0].event_id)])
    assert failed.exit_code == 1 and "failed again: RuntimeError: poison" in failed.output, failed.output

    del os.environ["POISON_SITE"]  # the fix
    replayed = cli.invoke(main, ["projector", "dead-letters", "replay", REFERENCE, "--all"])
    assert replayed.exit_code == 0, replayed.output
    assert f"replayed {poison_count} of {poison_count}" in replayed.output
    with sites_db.connect() as conn:
        assert listed(conn, name) == []
        assert all_summaries(conn) == history.expected  # the poison site's row is right too
    assert len(consume_all(bootstrap_servers, dlq, poison_count)) == poison_count


def test_discard_forgets_and_bad_ids_are_refused(
    sites_db: Engine, projected: Callable[..., Poisoned]
) -> None:
    name, _topic, _history, _poison = projected("sites-discard", partitions=1, events=20, sites=3, seed=19)
    with sites_db.connect() as conn:
        ids = [str(d.event_id) for d in listed(conn, name)]
    assert ids
    cli = CliRunner()
    refused = cli.invoke(main, ["projector", "dead-letters", "discard", REFERENCE, "nope"])
    assert refused.exit_code == 2 and "a UUID" in refused.output, refused.output
    gone = cli.invoke(main, ["projector", "dead-letters", "discard", REFERENCE, *ids])
    assert gone.exit_code == 0 and f"discarded {len(ids)} dead letter(s)" in gone.output, gone.output
    with sites_db.connect() as conn:
        assert listed(conn, name) == []
