"""Lag on a transactional topic: a projector that applied every committed record is caught up,
though each transaction's commit marker takes an offset after its last record (DESIGN.md,
"Caught up"). Before, `outbox projector status` and the lag gauge said 1 per partition: what the
CDC demo printed after a run that had applied everything."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

from outboxkit.examples.sites.events import SitesHistory
from outboxkit.examples.sites.projection import build_projector
from outboxkit.kafka import clients
from projectors.status import projector_status
from tests.projectors.conftest import running, stored_total, wait_until

PARTITIONS = 2


def produce_in_transactions(bootstrap: str, topic: str, history: SitesHistory, events: int) -> None:
    producer = clients.transactional_producer(bootstrap, f"{topic}-writer")
    records = history.generate(events, sites=8)
    for start in range(0, events, 10):  # a few records per transaction, each with its marker
        producer.begin_transaction()
        for key, value, headers in records[start : start + 10]:
            producer.produce(topic, value, key, headers=list[tuple[str, str | bytes | None]](headers))
        producer.commit_transaction(30)
    # One aborted transaction at the end: its records and marker are not lag either.
    producer.begin_transaction()
    producer.produce(topic, b"{}", b"site-0", headers=[("ce_type", b"site.created")])
    producer.abort_transaction(30)


def test_a_projector_that_applied_everything_has_no_lag(
    sites_db: Engine, bootstrap_servers: str, new_topic: Callable[..., str], unique: Callable[[str], str]
) -> None:
    topic = new_topic("sites-tx", partitions=PARTITIONS)
    history = SitesHistory(seed=11)
    produce_in_transactions(bootstrap_servers, topic, history, 60)
    projector = build_projector(topic, name=unique("tx-lag"))
    lag = [row.lag for row in projector_status(projector, sites_db, bootstrap_servers)]
    assert sum(lag) == 60, "before: every committed record is lag, markers and aborted ones are not"

    with running(projector, sites_db, bootstrap_servers) as run:
        wait_until(lambda: sum(run.runner.positions.values()) > 0, what="partitions taken")

        def gauges() -> list[float | None]:
            return [
                run.runner.metrics.registry.get_sample_value(
                    "outbox_projector_lag", {"projector": projector.name, "topic": topic, "partition": str(p)}
                )
                for p in range(PARTITIONS)
            ]

        wait_until(lambda: None not in gauges() and sum(g or 0 for g in gauges()) == 0, 60, "lag gauges of 0")
        assert stored_total(sites_db, projector.name) > 60, "stored offsets also count markers"
    rows = projector_status(projector, sites_db, bootstrap_servers)
    assert [row.lag for row in rows] == [0] * PARTITIONS
    assert all(row.next_offset is not None and row.next_offset < row.high for row in rows), (
        "each partition ends with a marker after the stored offset"
    )
