"""A poison event is quarantined with its reason, its aggregate's later events wait behind it, the
rest flows; an operator discards or requeues it with `outbox relay quarantine`."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import psycopg
import pytest
from click.testing import CliRunner
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from outbox import BytesSerializer, Event, Outbox, TopicRouter, publish_many
from outboxkit.cli import main
from tests.relay.conftest import RelayProcess, outbox_count, wait_for
from tests.relay.events import by_key, engine_for
from tests.services import consume_all, kafka_admin


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


def cli(url: str, *args: str) -> str:
    result = CliRunner().invoke(main, ["relay", "quarantine", *args], env={"OUTBOX_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    return result.output


def quarantined_ce_id(url: str, aggregate_id: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT ce_id::text FROM outbox_quarantine WHERE aggregate_id = %s", (aggregate_id,)
        ).fetchone()
    assert row is not None, f"{aggregate_id} is not in quarantine"
    return str(row[0])


@pytest.mark.parametrize("mode", ["idempotent", "transactional"])
def test_missing_or_invalid_topic_is_quarantined_and_holds_its_aggregate_across_topics(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
    make_topics: Callable[..., None],
    unique: Callable[[str], str],
    mode: str,
) -> None:
    # A's first event overrides its topic to one that does not exist (the producer may not create
    # topics, as on a broker with auto-create off), C's first has a name Kafka refuses (written by
    # hand: publish() refuses it); their second events go to a topic that exists. All in one batch.
    existing, missing = new_topic("quar-exists"), unique("quar-missing")
    outbox = Outbox(router=TopicRouter(existing))

    def event(aggregate: str, seq: int, topic: str | None = None) -> Event:
        return Event(
            type="t", aggregate_type="test", aggregate_id=aggregate, payload={"seq": seq}, topic=topic
        )

    engine = engine_for(clean_outbox)
    with engine.begin() as conn:
        publish_many(
            conn,
            [
                event("A", 1, missing),
                event("B", 1),
                event("C", 1),
                event("A", 2),
                event("C", 2),
                event("B", 2),
            ],
            outbox=outbox,
        )
    with psycopg.connect(clean_outbox) as conn:
        conn.execute(
            "UPDATE outbox_events SET topic = 'not a topic!' WHERE id ="
            " (SELECT min(id) FROM outbox_events WHERE aggregate_id = 'C')"
        )
    relay = relay_factory(
        env_extra={"OUTBOX_RELAY_PRODUCER": '{"allow.auto.create.topics": "false"}'}, mode=mode
    )

    wait_for(lambda: len(quarantined(clean_outbox)) == 2, 30, "A/1 and C/1 in quarantine")
    reasons = dict(quarantined(clean_outbox))
    assert f"topic {missing!r} does not exist" in reasons["A"]
    assert "create the topic, then `outbox relay quarantine requeue" in reasons["A"]
    assert "'not a topic!' is not a valid Kafka topic name" in reasons["C"]
    assert by_key(consume_all(bootstrap_servers, existing, 3, timeout=5)) == {"B": [1, 2]}
    assert outbox_count(clean_outbox) == 2  # A/2 and C/2 wait behind A/1 and C/1, on another topic
    assert relay.alive()

    make_topics([missing])
    cli(clean_outbox, "requeue", quarantined_ce_id(clean_outbox, "A"))
    cli(clean_outbox, "discard", quarantined_ce_id(clean_outbox, "C"))
    wait_for(lambda: outbox_count(clean_outbox) == 0, 30, "the held events to flow")
    [a1] = consume_all(bootstrap_servers, missing, 1, timeout=20)
    records = consume_all(bootstrap_servers, existing, 4, timeout=20)
    assert by_key(records) == {"B": [1, 2], "A": [2], "C": [2]}
    a2 = next(m for m in records if m.key() == b"A")
    assert a1.timestamp()[1] <= a2.timestamp()[1], "A/2 was produced before A/1"
    assert quarantined(clean_outbox) == []
    assert relay.terminate() == 0


@pytest.mark.parametrize("mode", ["idempotent", "transactional"])
def test_a_topic_kafka_creates_on_first_use_is_published_not_quarantined(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    unique: Callable[[str], str],
    mode: str,
) -> None:
    # The stack's broker auto-creates topics, as Kafka does by default: the first metadata request
    # creates the topic but answers "unknown topic"; that answer is not a refusal.
    topic = unique("auto-created")
    outbox = Outbox(router=TopicRouter(topic))
    engine = engine_for(clean_outbox)
    with engine.begin() as conn:
        publish_many(
            conn,
            [Event(type="t", aggregate_type="test", aggregate_id="a", payload={"seq": i}) for i in range(3)],
            outbox=outbox,
        )
    relay = relay_factory(mode=mode)
    wait_for(lambda: outbox_count(clean_outbox) == 0 or bool(quarantined(clean_outbox)), 30, "the relay")
    assert quarantined(clean_outbox) == []
    assert by_key(consume_all(bootstrap_servers, topic, 3, timeout=20)) == {"a": [0, 1, 2]}
    assert relay.terminate() == 0
    kafka_admin(bootstrap_servers).delete_topics([topic])


HAND_WRITTEN = (
    "INSERT INTO outbox_events (ce_id, ce_type, ce_source, ce_time, aggregate_type, aggregate_id,"
    " topic, content_type, payload, headers)"
    " VALUES (gen_random_uuid(), %(ce_type)s, 'by-hand', %(ce_time)s, 'test', %(aggregate)s, %(topic)s,"
    " 'application/json', %(payload)s, %(headers)s::jsonb)"
)


def test_malformed_hand_written_rows_are_quarantined_and_the_rest_flows(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    topic = new_topic("hand-written")

    def row(aggregate: str, seq: int, **overrides: str) -> dict[str, str | bytes]:
        values: dict[str, str | bytes] = {
            "ce_type": "t",
            "ce_time": "2026-11-26T12:50:08.123456Z",
            "aggregate": aggregate,
            "topic": topic,
            "payload": orjson.dumps({"seq": seq}),
            "headers": "{}",
        }
        return {**values, **overrides}

    rows = [
        row("good", 1),
        row("int-header", 1, headers='{"attempt": 5}'),
        row("int-header", 2),
        row("bad-time", 1, ce_time="yesterday"),
        row("array-headers", 1, headers='["a", "b"]'),
        row("envelope-header", 1, headers='{"ce_id": "spoofed"}'),
        row("no-type", 1, ce_type=""),
        row("good", 2),
    ]
    with psycopg.connect(clean_outbox) as conn:
        conn.cursor().executemany(HAND_WRITTEN, rows)
    relay = relay_factory()

    wait_for(lambda: len(quarantined(clean_outbox)) == 5, 30, "the malformed rows in quarantine")
    assert by_key(consume_all(bootstrap_servers, topic, 2, timeout=20)) == {"good": [1, 2]}
    reasons = dict(quarantined(clean_outbox))
    assert "column headers: header 'attempt' must have a str value" in reasons["int-header"]
    assert "column ce_time: 'yesterday' is not an RFC 3339 timestamp" in reasons["bad-time"]
    assert "column headers: must be a JSON object" in reasons["array-headers"]
    assert (
        "column headers: header name 'ce_id' belongs to the CloudEvents envelope"
        in reasons["envelope-header"]
    )
    assert "column ce_type: empty" in reasons["no-type"]
    for reason in reasons.values():
        assert "outbox relay quarantine requeue" in reason and "discard" in reason
    assert outbox_count(clean_outbox) == 1  # int-header/2 waits behind int-header/1
    assert relay.alive()

    # What the reason says to do: correct the row in the quarantine, then requeue it.
    with psycopg.connect(clean_outbox) as conn:
        conn.execute(
            "UPDATE outbox_quarantine SET headers = '{\"attempt\": \"5\"}' WHERE aggregate_id = 'int-header'"
        )
    cli(clean_outbox, "requeue", quarantined_ce_id(clean_outbox, "int-header"))
    records = consume_all(bootstrap_servers, topic, 4, timeout=20)
    assert by_key(records) == {"good": [1, 2], "int-header": [1, 2]}
    assert dict(records[2].headers() or [])["attempt"] == b"5"
    assert relay.terminate() == 0


def test_a_refusal_only_the_broker_makes_holds_the_aggregate_in_transactional_mode(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    # The relay learns the topic's size limit, then the limit is lowered under it: the pre-produce
    # check passes a 5 KB record that the broker refuses. The transaction is aborted; the culprit
    # must be quarantined, and A's next event, on another topic, must not overtake it.
    small, other = new_topic("shrinks"), new_topic("other")
    engine = engine_for(clean_outbox)
    to_small = Outbox(router=TopicRouter(small), serializer=BytesSerializer("text/plain"))
    with engine.begin() as conn:
        publish_many(
            conn, [Event(type="t", aggregate_type="test", aggregate_id="W", payload=b"0")], outbox=to_small
        )
    relay = relay_factory(mode="transactional")
    assert len(consume_all(bootstrap_servers, small, 1, timeout=20)) == 1
    lowered = ConfigEntry("max.message.bytes", "2048", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, small, incremental_configs=[lowered])
    admin = kafka_admin(bootstrap_servers)
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)

    def event(aggregate: str, payload: bytes, topic: str) -> Event:
        return Event(type="t", aggregate_type="test", aggregate_id=aggregate, payload=payload, topic=topic)

    with engine.begin() as conn:
        publish_many(
            conn,
            [
                event("A", b"x" * 5000, small),
                event("B", b"1", small),
                event("A", b"2", other),
                event("B", b"2", other),
            ],
            outbox=to_small,
        )
    wait_for(lambda: len(quarantined(clean_outbox)) == 1, 30, "A/1 in quarantine")
    [(aggregate, reason)] = quarantined(clean_outbox)
    assert aggregate == "A" and "MSG_SIZE_TOO_LARGE" in reason
    assert [m.key() for m in consume_all(bootstrap_servers, small, 2, timeout=20)] == [b"W", b"B"]
    assert [m.key() for m in consume_all(bootstrap_servers, other, 2, timeout=5)] == [b"B"]
    assert outbox_count(clean_outbox) == 1  # A/2 waits behind A/1
    assert relay.alive()
    assert relay.terminate() == 0


def test_requeue_all_of_a_topic_moves_them_in_chunks_with_progress(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    new_topic: Callable[..., str],
) -> None:
    small, other = new_topic("poison-all", config={"max.message.bytes": "2048"}), new_topic("fine")
    engine = engine_for(clean_outbox)
    for topic, aggregates in ((small, ["a", "b", "c"]), (other, ["d"])):
        outbox = Outbox(router=TopicRouter(topic), serializer=BytesSerializer("text/plain"))
        with engine.begin() as conn:
            events = [
                Event(type="t", aggregate_type="test", aggregate_id=a, payload=b"x" * 5000)
                for a in aggregates
            ]
            publish_many(conn, events, outbox=outbox)
    relay = relay_factory()
    wait_for(lambda: len(quarantined(clean_outbox)) == 3, 20, "three poison events in quarantine")
    assert relay.terminate() == 0
    assert outbox_count(clean_outbox) == 0  # d was small enough for its topic

    env = {"OUTBOX_DATABASE_URL": clean_outbox}
    refused = CliRunner().invoke(main, ["relay", "quarantine", "requeue"], env=env)
    assert refused.exit_code == 2 and "--all, or --topic" in refused.output
    result = CliRunner().invoke(main, ["relay", "quarantine", "requeue", "--topic", small], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"requeued 3 event(s) of topic {small}"
    assert result.stderr.splitlines()[-1].startswith("requeued: 3/3 (100 %) in ")  # not a terminal: a line
    assert quarantined(clean_outbox) == [] and outbox_count(clean_outbox) == 3
