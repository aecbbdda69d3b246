"""The runtime against real PostgreSQL and Kafka: applies, dedupes, replays, dead-letters."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

from examples.sites.events import SitesHistory, emit
from examples.sites.projection import build_projector
from examples.sites.read_model import all_summaries
from tests.projectors.conftest import running, stored_total, wait_until


def test_projects_site_events_into_the_read_model(
    sites_db: Engine, bootstrap_servers: str, new_topic: Callable[..., str], unique: Callable[[str], str]
) -> None:
    topic = new_topic("sites", partitions=3)
    history = SitesHistory(seed=1)
    emit(bootstrap_servers, topic, history.generate(600, sites=40))
    projector = build_projector(topic, name=unique("sites"))
    with running(projector, sites_db, bootstrap_servers):
        wait_until(lambda: stored_total(sites_db, projector.name) == 600, what="600 records applied")
    with sites_db.connect() as conn:
        assert all_summaries(conn) == history.expected
