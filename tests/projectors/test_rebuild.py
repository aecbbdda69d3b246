"""Blue/green rebuild: readers see the old complete table until the swap, then the new complete one;
the live projector, running throughout, goes on writing into the new table."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import Engine, text

from outboxkit.examples.sites.events import emit
from outboxkit.examples.sites.projection import build_projector
from outboxkit.examples.sites.read_model import all_summaries
from projectors.rebuild import rebuild, rebuild_schema
from tests.projectors.conftest import SitesTopic, running, stored_total, wait_until


def table_oid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT 'site_summary'::regclass::oid")).scalar_one())


def test_rebuild_swaps_without_readers_seeing_an_empty_or_partial_table(
    sites_db: Engine, bootstrap_servers: str, sites_topic: SitesTopic, unique: Callable[[str], str]
) -> None:
    topic, history = sites_topic("sites-rebuild", partitions=3, events=4000, sites=500, seed=9)
    projector = build_projector(topic, name=unique("rebuild"))
    sites = len(history.expected)
    versions = sum(v for _, v, _ in history.expected.values())

    with running(projector, sites_db, bootstrap_servers):
        wait_until(lambda: stored_total(sites_db, projector.name) == 4000, what="live projection")
        # A damaged read model, as a rebuild would repair it: wrong owners, same shape.
        with sites_db.begin() as conn:
            conn.execute(text("UPDATE site_summary SET owner = 'damaged' WHERE site_id < 'site-00100'"))
        old_oid = table_oid(sites_db)

        seen: list[tuple[int, int]] = []
        stop = threading.Event()

        def reader() -> None:
            with sites_db.connect() as conn:
                while not stop.is_set():
                    row = conn.execute(
                        text("SELECT count(*), coalesce(sum(version), 0) FROM site_summary")
                    ).one()
                    conn.commit()
                    seen.append((int(row[0]), int(row[1])))

        readers = [threading.Thread(target=reader) for _ in range(2)]
        for thread in readers:
            thread.start()
        reports: list[tuple[int, int]] = []
        try:
            count = rebuild(
                projector, sites_db, bootstrap_servers, progress=lambda d, t: reports.append((d, t))
            )
        finally:
            stop.set()
            for thread in readers:
                thread.join(30)

        assert count == 4000
        assert reports[-1] == (4000, 4000)
        assert len(seen) > 50, "the readers hardly read"
        assert set(seen) == {(sites, versions)}, "a reader saw an empty or partial read model"
        assert table_oid(sites_db) != old_oid
        with sites_db.connect() as conn:
            assert all_summaries(conn) == history.expected
            leftover = conn.execute(
                text("SELECT count(*) FROM pg_namespace WHERE nspname = :s"), {"s": rebuild_schema(projector)}
            )
            assert leftover.scalar_one() == 0
            stored = conn.execute(
                text("SELECT DISTINCT projector FROM projector_offsets WHERE projector LIKE :p"),
                {"p": projector.name + "%"},
            )
            assert [r[0] for r in stored] == [projector.name]

        # The live projector keeps projecting, now into the new table.
        emit(bootstrap_servers, topic, history.generate(500, sites=600))
        wait_until(lambda: stored_total(sites_db, projector.name) == 4500, what="projection after the swap")
    with sites_db.connect() as conn:
        assert all_summaries(conn) == history.expected


def test_rebuild_keeps_the_read_models_grants_and_hand_made_indexes(
    sites_db: Engine, bootstrap_servers: str, sites_topic: SitesTopic, unique: Callable[[str], str]
) -> None:
    """Issue 13 item 2: grants (to a role, and to PUBLIC) and an index made by hand survive the swap.
    (The stack's user may not create roles: a predefined one, pg_monitor, stands for a reporting role.)"""
    topic, history = sites_topic("sites-grants", partitions=1, events=50, sites=10, seed=21)
    projector = build_projector(topic, name=unique("grants"))
    with sites_db.begin() as conn:
        conn.execute(text("GRANT SELECT ON site_summary TO pg_monitor"))
        conn.execute(text("GRANT INSERT ON site_summary TO PUBLIC"))
        conn.execute(
            text("CREATE INDEX site_summary_by_owner ON site_summary (owner) WHERE owner IS NOT NULL")
        )

    def privileges(role: str) -> set[str]:
        with sites_db.connect() as conn:
            return {
                p
                for p in ("SELECT", "INSERT", "UPDATE")
                if conn.execute(text(f"SELECT has_table_privilege('{role}', 'site_summary', '{p}')")).scalar()
            }

    def index() -> str | None:
        with sites_db.connect() as conn:
            found = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'site_summary_by_owner'")
            ).scalar()
            return None if found is None else str(found)

    before = (privileges("pg_monitor"), privileges("public"))
    assert before == ({"SELECT", "INSERT"}, {"INSERT"})  # pg_monitor is in PUBLIC too
    hooked: list[int] = []
    rebuild(
        projector,
        sites_db,
        bootstrap_servers,
        after_swap=lambda conn: hooked.append(
            int(conn.execute(text("SELECT count(*) FROM site_summary")).scalar_one())
        ),
    )
    assert hooked == [len(history.expected)]  # the hook ran in the swap, on the new table
    assert (privileges("pg_monitor"), privileges("public")) == before
    found = index()
    assert found is not None and found.endswith("(owner) WHERE (owner IS NOT NULL)"), found
    assert "outboxkit_rebuild" not in found
    # A second rebuild carries them again, from the table the first one made.
    rebuild(projector, sites_db, bootstrap_servers)
    assert (privileges("pg_monitor"), privileges("public")) == before and index() == found
