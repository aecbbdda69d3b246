"""The relay contract, one suite for every relay (in the manner of Watermill's shared pub/sub tests).

A relay's test module subclasses RelayConformance and provides the `harness` fixture: a database
with the outbox schema and a way to start the relay on it. Each case writes events with publish()
and reads Kafka; the reference is outbox.envelope.to_kafka of the stored event, so every relay that
passes produces the same topic, key, value bytes and headers (names, order, bytes) as any other.
Capability flags (class attributes) say which guarantees a relay claims beyond the common ones.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Protocol

import pytest
from confluent_kafka import Message
from sqlalchemy import Engine

from outbox import TOMBSTONE, Event, Outbox, TopicRouter, publish, publish_many
from outbox.config import KAFKA_DEFAULT_MAX_RECORD_BYTES
from outbox.envelope import KafkaRecord, to_kafka
from tests.relay.events import (
    assert_complete_in_order,
    engine_for,
    outbox_for,
    write_numbered,
    write_rounds,
)
from tests.services import consume_all

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class RelayHarness(Protocol):
    """One relay under test: its database (migrated, empty) and how to start it."""

    name: str
    database_url: str

    def start(self) -> None:
        """Start relaying; events committed from now on must reach Kafka."""

    def restart(self) -> None:
        """Stop abruptly where the relay allows it, and start again."""


def contract_events(aggregates: int = 20) -> list[Event]:
    """The event set every relay must publish identically: unicode, a payload at the size limit,
    user headers (order-sensitive names), trace context and none, int ids, many aggregates."""
    events = [
        Event(
            type="customer.renamed",
            aggregate_type="customer",
            aggregate_id="kunde-ü-東京-😀",
            payload={"name": "Zoë Ångström 東京 😀", "quote": 'say "hi"\\n\t'},
            headers={
                "tenant": "acme-ü",
                "Zeta": "😀",
                "a.b": 'say "hi" \\ {x: [1]}',
                "x-request-id": "r-1",
                "z": "",
            },
            traceparent=TRACEPARENT,
        ),
        Event(
            type="customer.created",
            aggregate_type="customer",
            aggregate_id=42,
            payload={"id": 42},
            source="crm-service",
            traceparent=None,
        ),
        # A delete on a compacted topic: a null value with the usual headers, through every relay.
        Event(type="customer.erased", aggregate_type="customer", aggregate_id=7, payload=TOMBSTONE),
        Event(type="order.placed", aggregate_type="order", aggregate_id="o-1", payload={}, traceparent=None),
    ]
    # A record just under the limit: Kafka's default max, key, headers and framing included.
    big = Event(
        type="order.attachment",
        aggregate_type="order",
        aggregate_id="o-big",
        payload={"blob": ""},
        headers={"kind": "large"},
        traceparent=TRACEPARENT,
    )
    room = KAFKA_DEFAULT_MAX_RECORD_BYTES - to_kafka(Outbox().prepare(big)).size() - 64
    events.append(
        Event(
            type=big.type,
            aggregate_type=big.aggregate_type,
            aggregate_id=big.aggregate_id,
            payload={"blob": "ä" * (room // 4) + "x" * (room - 2 * (room // 4))},
            headers=big.headers,
            traceparent=TRACEPARENT,
        )
    )
    for seq in range(3):
        events.extend(
            Event(
                type="order.line-added",
                aggregate_type="order",
                aggregate_id=f"o-{agg:03d}",
                payload={"seq": seq, "agg": agg},
                headers={"seq": str(seq)} if agg % 2 else {},
                traceparent=TRACEPARENT if agg % 3 == 0 else None,
            )
            for agg in range(aggregates)
        )
    return events


def expected_records(outbox: Outbox, events: Sequence[Event]) -> dict[str, KafkaRecord]:
    """ce_id -> the record the polling relay's encoder makes of the stored event."""
    return {str(e.id): to_kafka(outbox.prepare(e)) for e in events}


def header(msg: Message, name: str) -> bytes:
    return dict(msg.headers() or [])[name]


def as_record(msg: Message) -> KafkaRecord:
    return KafkaRecord(msg.topic(), msg.key() or b"", msg.value(), list(msg.headers() or []))


def publish_contract_events(engine: Engine, outbox: Outbox, events: Sequence[Event]) -> None:
    """The set in a few transactions of different sizes (one event, several, many)."""
    with engine.begin() as conn:
        publish(conn, events[0], outbox=outbox)
    with engine.begin() as conn:
        publish_many(conn, events[1:4], outbox=outbox)
    with engine.begin() as conn:
        publish_many(conn, events[4:], outbox=outbox)


def read_topics(bootstrap: str, topics: dict[str, int], timeout: float = 90) -> dict[str, list[Message]]:
    return {t: consume_all(bootstrap, t, n, timeout=timeout) for t, n in topics.items()}


class RelayConformance:
    """Every relay passes these. Subclasses provide `harness`."""

    exactly_once = False
    """Capability: no duplicate across a restart, for read_committed consumers."""

    @pytest.fixture
    def harness(self) -> RelayHarness:
        raise NotImplementedError

    def test_records_are_the_envelope_of_the_stored_events(
        self,
        harness: RelayHarness,
        bootstrap_servers: str,
        unique: Callable[[str], str],
        make_topics: Callable[..., None],
    ) -> None:
        prefix = unique(f"contract-{harness.name}")
        outbox = Outbox(router=TopicRouter(prefix + ".{aggregate_type}"))
        events = contract_events()
        expected = expected_records(outbox, events)
        counts: dict[str, int] = defaultdict(int)
        for record in expected.values():
            counts[record.topic] += 1
        make_topics(sorted(counts))
        harness.start()
        publish_contract_events(engine_for(harness.database_url), outbox, events)

        got = read_topics(bootstrap_servers, counts)
        for topic, records in got.items():
            assert len(records) == counts[topic], f"{topic}: {len(records)} records, {counts[topic]} expected"
            for msg in records:
                want = expected[header(msg, "ce_id").decode()]
                assert as_record(msg) == want  # topic, key, value bytes, headers (names, order, bytes)
            # Per topic (one partition), events appear in commit order.
            order = [str(e.id) for e in events if expected[str(e.id)].topic == topic]
            assert [header(m, "ce_id").decode() for m in records] == order

    def test_per_aggregate_commit_order_on_partitioned_topic(
        self, harness: RelayHarness, bootstrap_servers: str, new_topic: Callable[..., str]
    ) -> None:
        topic = new_topic(f"order-{harness.name}", partitions=3)
        aggregates = [f"agg-{i}" for i in range(16)]
        harness.start()
        total = write_numbered(
            engine_for(harness.database_url), outbox_for(topic), aggregates, 40, per_transaction=37
        )
        records = consume_all(bootstrap_servers, topic, total, timeout=90)
        assert_complete_in_order(records, aggregates, 40, exactly_once=True)

    def test_rolled_back_transactions_never_appear(
        self, harness: RelayHarness, bootstrap_servers: str, new_topic: Callable[..., str]
    ) -> None:
        topic = new_topic(f"atomic-{harness.name}")
        outbox = outbox_for(topic)
        engine = engine_for(harness.database_url)
        harness.start()

        def event(name: str) -> Event:
            return Event(type="test.atomic", aggregate_type="a", aggregate_id="x", payload={"n": name})

        with engine.begin() as conn:
            publish(conn, event("committed-1"), outbox=outbox)
        with engine.connect() as conn:
            with conn.begin() as tx:
                publish_many(conn, [event("rolled-back-1"), event("rolled-back-2")], outbox=outbox)
                tx.rollback()
            with conn.begin():
                publish(conn, event("committed-2"), outbox=outbox)
                nested = conn.begin_nested()
                publish(conn, event("savepoint-rolled-back"), outbox=outbox)
                nested.rollback()
                publish(conn, event("committed-3"), outbox=outbox)
        records = consume_all(bootstrap_servers, topic, 3, timeout=60)
        names = [msg.value() for msg in records]
        assert names == [b'{"n":"committed-1"}', b'{"n":"committed-2"}', b'{"n":"committed-3"}']

    def test_restart_while_events_flow_loses_nothing(
        self, harness: RelayHarness, bootstrap_servers: str, new_topic: Callable[..., str]
    ) -> None:
        topic = new_topic(f"restart-{harness.name}", partitions=3)
        aggregates = [f"agg-{i}" for i in range(6)]
        engine, outbox = engine_for(harness.database_url), outbox_for(topic)
        harness.start()
        rounds = 60
        writer = threading.Thread(
            target=write_rounds, args=(engine, outbox, aggregates, 0, rounds, 0.03), daemon=True
        )
        writer.start()
        assert consume_all(bootstrap_servers, topic, len(aggregates) * 3, timeout=60)
        harness.restart()
        time.sleep(0.5)
        writer.join(timeout=60)
        records = consume_all(bootstrap_servers, topic, len(aggregates) * rounds, timeout=90)
        assert_complete_in_order(records, aggregates, rounds, exactly_once=self.exactly_once)
