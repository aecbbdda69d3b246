"""A poison event is quarantined with its reason, its aggregate's later events wait behind it, the
rest flows; an operator discards or requeues it with `outbox relay quarantine`."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from click.testing import CliRunner

from outbox import BytesSerializer, Event, Outbox, TopicRouter, publish_many
from outboxkit.cli import main
from tests.relay.conftest import RelayProcess, outbox_count, wait_for
from tests.relay.events import by_key, engine_for
from tests.services import consume_all


def quarantined(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return [
            (r[0], r[1])
            for r in conn.execute("SELECT aggregate_id, reason FROM outbox_quarantine ORDER BY id").fetchall()
        ]


def test_oversized_event_is_quarantined_and_holds_only_its_aggregate(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    # The topic accepts at most 2 KB per record; publish() allows 1 MB, so a 5 KB event gets through
    # the write side (as if the topic's limit were lowered later) and must be refused by the relay.
    topic = new_topic("poison", config={"max.message.bytes": "2048"})
    outbox = Outbox(router=TopicRouter(topic), serializer=BytesSerializer("text/plain"))
    engine = engine_for(clean_outbox)
    with engine.begin() as conn:
        publish_many(
            conn,
            [
                Event(type="t", aggregate_type="test", aggregate_id="good", payload=b"1"),
                Event(type="t", aggregate_type="test", aggregate_id="bad", payload=b"x" * 5000),
                Event(type="t", aggregate_type="test", aggregate_id="bad", payload=b"2"),
                Event(type="t", aggregate_type="test", aggregate_id="good", payload=b"2"),
            ],
            outbox=outbox,
        )
    relay = relay_factory()
    wait_for(lambda: len(quarantined(clean_outbox)) == 1, 20, "the poison event in quarantine")
    [(aggregate, reason)] = quarantined(clean_outbox)
    assert aggregate == "bad"
    assert "exceeds the 2048-byte limit" in reason
    keys = [(m.key(), m.value()) for m in consume_all(bootstrap_servers, topic, 2, timeout=20)]
    assert keys == [(b"good", b"1"), (b"good", b"2")]
    # bad/2 waits behind the quarantined bad/1: it must not overtake it.
    assert outbox_count(clean_outbox) == 1

    env = {"OUTBOX_DATABASE_URL": clean_outbox}
    listing = CliRunner().invoke(main, ["relay", "quarantine", "list"], env=env)
    assert listing.exit_code == 0, listing.output
    assert "test/bad" in listing.output and "1 quarantined" in listing.output
    with psycopg.connect(clean_outbox) as conn:
        row = conn.execute("SELECT ce_id::text FROM outbox_quarantine").fetchone()
    assert row is not None
    discarded = CliRunner().invoke(main, ["relay", "quarantine", "discard", row[0]], env=env)
    assert discarded.exit_code == 0, discarded.output
    assert f"discarded 1 event(s): {row[0]}" in discarded.output

    wait_for(lambda: outbox_count(clean_outbox) == 0, 20, "the held event to flow")
    records = consume_all(bootstrap_servers, topic, 3, timeout=20)
    assert [(m.key(), m.value()) for m in records][-1] == (b"bad", b"2")
    assert relay.terminate() == 0


def test_requeue_puts_the_event_back_in_its_place(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    topic = new_topic("requeue")
    engine = engine_for(clean_outbox)
    outbox = Outbox(router=TopicRouter(topic))
    with engine.begin() as conn:
        publish_many(
            conn,
            [Event(type="t", aggregate_type="test", aggregate_id="a", payload={"seq": i}) for i in range(3)],
            outbox=outbox,
        )
    with psycopg.connect(clean_outbox) as conn:  # quarantine the first by hand, as the relay would
        conn.execute(
            "WITH moved AS (DELETE FROM outbox_events WHERE id = (SELECT min(id) FROM"
            " outbox_events) RETURNING *) INSERT INTO outbox_quarantine (id, ce_id, ce_type,"
            " ce_source, ce_time, aggregate_type, aggregate_id, topic, content_type, payload,"
            " headers, traceparent, reason) SELECT id, ce_id, ce_type, ce_source, ce_time,"
            " aggregate_type, aggregate_id, topic, content_type, payload, headers, traceparent,"
            " 'test' FROM moved"
        )
        ce_id = conn.execute("SELECT ce_id::text FROM outbox_quarantine").fetchone()
    assert ce_id is not None
    relay = relay_factory()
    relay.wait_ready()
    assert consume_all(bootstrap_servers, topic, 1, timeout=3) == []  # all of `a` waits
    result = CliRunner().invoke(
        main, ["relay", "quarantine", "requeue", ce_id[0]], env={"OUTBOX_DATABASE_URL": clean_outbox}
    )
    assert result.exit_code == 0, result.output
    seqs = by_key(consume_all(bootstrap_servers, topic, 3, timeout=20))
    assert seqs == {"a": [0, 1, 2]}
    assert relay.terminate() == 0
