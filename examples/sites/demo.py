"""The sites example end to end, for the README's demo: publish a few site events, project them,
and answer "what is site X?" with one primary-key lookup of `site_summary`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from confluent_kafka.admin import AdminClient, NewTopic

from examples.sites.events import emit, envelope
from examples.sites.projection import build_projector
from examples.sites.read_model import create_read_model, site_summary_of
from projectors.database import engine_for
from projectors.runtime import ProjectorRunner
from projectors.status import projector_status

TOPIC = "outboxkit.demo.sites"


def run_sites_demo(
    database_url: str,
    bootstrap_servers: str,
    echo: Callable[[str], None] = print,
    *,
    topic: str = TOPIC,
    name: str = "site-summary-demo",
) -> None:
    """Needs the toolkit's tables (Alembic); creates the topic and `site_summary` when missing."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    if topic not in admin.list_topics(timeout=10).topics:
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)
    engine = engine_for(database_url)
    with engine.begin() as conn:
        create_read_model(conn)
    stamp = f"{time.time_ns() % 10**9:09d}"
    sites = [f"site-{stamp}-{n}" for n in range(2)]
    emit(
        bootstrap_servers,
        topic,
        [
            envelope("site.created", sites[0], {"owner": "ann", "version": 1}),
            envelope("site.created", sites[1], {"owner": "bob", "version": 1}),
            envelope("app.installed", sites[0], {"app": "shop", "version": 2}),
            envelope("site.owner_changed", sites[0], {"owner": "cid", "version": 3}),
            envelope("app.installed", sites[0], {"app": "blog", "version": 4}),
            envelope("app.uninstalled", sites[0], {"app": "shop", "version": 5}),
        ],
    )
    echo(f"1. sites service: published 6 events for {', '.join(sites)} to {topic}")

    projector = build_projector(topic, name=name)
    stop = threading.Event()
    runner = ProjectorRunner(projector, engine, bootstrap_servers)
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    try:
        while sum(p.lag for p in projector_status(projector, engine, bootstrap_servers)) > 0:
            if time.monotonic() > deadline or not thread.is_alive():
                raise SystemExit("the site-summary projector did not catch up within 60 s")
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(30)
    echo(f"2. projector {name}: caught up, every partition's offset stored with the read model")
    with engine.connect() as conn:
        for site in sites:
            echo(f"3. lookup site_summary[{site}] -> {site_summary_of(conn, site)}")
    engine.dispose()
