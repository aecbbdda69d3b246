"""The polling relay against the real PostgreSQL and Kafka: envelope, order, retention, shutdown."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from sqlalchemy import text

from outbox import Event, publish
from relay import sql
from relay.store import OutboxStore
from tests.relay.conftest import RelayProcess, outbox_count, wait_for
from tests.relay.events import assert_complete_in_order, engine_for, outbox_for, write_numbered
from tests.services import consume_all


def test_relay_publishes_the_envelope_and_empties_the_outbox(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    topic = new_topic("envelope")
    engine = engine_for(clean_outbox)
    event = Event(
        type="order.placed",
        aggregate_type="order",
        aggregate_id="o-1",
        payload={"total": "12.50", "note": "grüße"},
        headers={"tenant": "acme"},
        source="shop",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    with engine.begin() as conn:
        publish(conn, event, outbox=outbox_for(topic))
    relay_factory()

    [msg] = consume_all(bootstrap_servers, topic, 1)
    assert msg.key() == b"o-1"
    assert msg.value() == '{"total":"12.50","note":"grüße"}'.encode()
    headers = dict(msg.headers() or [])
    assert headers == {
        "ce_specversion": b"1.0",
        "ce_id": str(event.id).encode(),
        "ce_type": b"order.placed",
        "ce_source": b"shop",
        "ce_time": headers["ce_time"],
        "ce_subject": b"o-1",
        "content-type": b"application/json",
        "traceparent": b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tenant": b"acme",
    }
    assert headers["ce_time"].decode().startswith(event.occurred_at.strftime("%Y-%m-%dT%H:%M:%S"))
    wait_for(lambda: outbox_count(clean_outbox) == 0, 30, "the outbox to empty")


@pytest.mark.parametrize("mode", ["idempotent", "transactional"])
def test_backlog_drains_in_order_and_sigterm_exits_cleanly(
    mode: str,
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    topic = new_topic(f"drain-{mode}", partitions=3)
    aggregates = [f"agg-{i}" for i in range(12)]
    total = write_numbered(engine_for(clean_outbox), outbox_for(topic), aggregates, 100)
    relay = relay_factory(mode=mode, batch_size=250)

    records = consume_all(bootstrap_servers, topic, total, timeout=60)
    assert_complete_in_order(records, aggregates, 100, exactly_once=True)
    wait_for(lambda: outbox_count(clean_outbox) == 0, 30, "the outbox to empty")
    assert relay.terminate() == 0


def test_retention_keep_marks_rows_and_purges_old_ones(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    topic = new_topic("keep")
    engine = engine_for(clean_outbox)
    write_numbered(engine, outbox_for(topic), ["a"], 5)
    with engine.begin() as conn:  # one event published long ago, past the retention
        conn.execute(
            text(
                "UPDATE outbox_events SET published_at = now() - interval '30 days'"
                " WHERE id = (SELECT min(id) FROM outbox_events)"
            )
        )
    relay = relay_factory(env_extra={"OUTBOX_RETENTION": "keep", "OUTBOX_RETENTION_DAYS": "7"})
    assert len(consume_all(bootstrap_servers, topic, 4, timeout=30)) == 4

    def settled() -> bool:
        with psycopg.connect(clean_outbox) as conn:
            row = conn.execute("SELECT count(*), count(published_at) FROM outbox_events").fetchone()
        return row == (4, 4)

    wait_for(settled, 30, "4 kept rows marked published and the old one purged")
    assert relay.terminate() == 0


@pytest.mark.parametrize(("shards", "held"), [(1, False), (4, False), (1, True), (4, True)])
def test_batch_query_reads_the_index_in_order_whatever_the_backlog(
    clean_outbox: str, shards: int, held: bool
) -> None:
    """A fresh 20k backlog (no statistics yet): the plan must stop after one batch, not sort it all."""
    with psycopg.connect(clean_outbox, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO outbox_events (ce_id, ce_type, ce_source, ce_time, aggregate_type, aggregate_id,"
            " topic, content_type, payload) SELECT gen_random_uuid(), 't', 's', 'x', 'a', 'a' || i, 't',"
            " 'application/json', '{}'::bytea FROM generate_series(1, 20000) AS i"
        )
        store = OutboxStore(conn, keep=False, retention_days=7)
        query, params = sql.fetch_batch(1 % shards, shards, 1000, holds=held)
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + query, params).fetchall())
        assert "Index Scan using outbox_events_unpublished" in plan, plan
        assert "Sort" not in plan and "Bitmap" not in plan, plan
        assert len(store.fetch(1 % shards, shards, 1000)) == 1000
