"""The sites example's demo runs against the real services."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

from examples.sites.demo import run_sites_demo


def test_sites_demo_projects_and_looks_up(
    sites_db: Engine, projector_db: str, bootstrap_servers: str, new_topic: Callable[..., str]
) -> None:
    lines: list[str] = []
    run_sites_demo(projector_db, bootstrap_servers, lines.append, topic=new_topic("demo-sites", partitions=3))
    assert lines[0].startswith("1. sites service: published 6 events")
    assert "caught up" in lines[1]
    first, second = lines[2], lines[3]
    assert "'owner': 'cid', 'version': 5, 'installed_apps': ['blog']" in first
    assert "'owner': 'bob', 'version': 1, 'installed_apps': []" in second
