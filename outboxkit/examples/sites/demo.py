"""The sites example end to end, for the README's demo: publish a few site events, project them,
and answer "what is site X?" with one primary-key lookup of `site_summary`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session

from outboxkit.examples.sites.projection import build_projector
from outboxkit.examples.sites.read_model import create_read_model, site_summary_of
from outboxkit.examples.sites.service import TOPIC, Base, Site
from outboxkit.kafka import clients
from outboxkit.kafka.admin import ensure_topic
from outboxkit.kafka.settings import KafkaSettings
from projectors.database import engine_for
from projectors.runtime import ProjectorRunner
from projectors.status import projector_status


def run_sites_demo(
    database_url: str,
    kafka: KafkaSettings | str,
    echo: Callable[[str], None] = print,
    *,
    name: str = "site-summary-demo",
) -> None:
    """The sites service writes through the outbox; a relay must be running (the README demo runs
    one). Needs the toolkit's tables (Alembic); creates `sites` and `site_summary` when missing."""
    ensure_topic(clients.admin(kafka), TOPIC, partitions=3)
    engine = engine_for(database_url)
    Base.metadata.create_all(engine)  # the service's own table
    with engine.begin() as conn:
        create_read_model(conn)
    stamp = f"{time.time_ns() % 10**9:09d}"
    sites = [f"site-{stamp}-{n}" for n in range(2)]
    with Session(engine) as session, session.begin():
        session.add_all([Site.create(sites[0], "ann"), Site.create(sites[1], "bob")])
    with Session(engine) as session, session.begin():
        site = session.get_one(Site, sites[0])
        site.install("shop")
        site.change_owner("cid")
        site.install("blog")
        site.uninstall("shop")
    echo(
        f"7. sites service: created {sites[0]} and {sites[1]}, changed the first four times "
        f"(6 events through the outbox to topic {TOPIC})"
    )

    projector = build_projector(TOPIC, name=name)
    stop = threading.Event()
    runner = ProjectorRunner(projector, engine, kafka)
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    try:
        while True:
            with engine.connect() as conn:
                first = site_summary_of(conn, sites[0])
            if first is not None and first["version"] == 5:
                break
            if time.monotonic() > deadline or not thread.is_alive():
                raise SystemExit("the site-summary projector did not catch up within 60 s")
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(30)
    lag = sum(p.lag for p in projector_status(projector, engine, kafka))
    echo(f"8. projector {name}: applied them; offsets stored with the read model (lag {lag})")
    with engine.connect() as conn:
        for site_id in sites:
            echo(f"9. lookup site_summary[{site_id}] -> {site_summary_of(conn, site_id)}")
    engine.dispose()
