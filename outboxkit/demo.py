"""The README's demo: a smoke pipeline PostgreSQL -> Kafka -> back, printing what happened.

At this stage of the project it writes an event row in a PostgreSQL transaction, publishes it to
Kafka with the CloudEvents envelope, and reads it back; later stages replace each step with the
toolkit's own publish(), relay and projector.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from confluent_kafka import Consumer, KafkaError, Producer

from outbox.config import OutboxSettings

TOPIC = "outboxkit.demo.smoke"


def run_demo(settings: OutboxSettings, echo: Callable[[str], None] = print) -> None:
    event_id = str(uuid.uuid4())
    payload = {"order_id": f"order-{event_id[:8]}", "total": "42.00", "currency": "EUR"}
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS outboxkit_demo_smoke ("
            " id uuid PRIMARY KEY, aggregate_id text NOT NULL, payload jsonb NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(
            "INSERT INTO outboxkit_demo_smoke (id, aggregate_id, payload) VALUES (%s, %s, %s)",
            (event_id, payload["order_id"], json.dumps(payload)),
        )
    echo(f"1. PostgreSQL: committed event {event_id} for aggregate {payload['order_id']}")

    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT aggregate_id, payload, created_at FROM outboxkit_demo_smoke WHERE id = %s",
            (event_id,),
        ).fetchone()
        conn.execute("DELETE FROM outboxkit_demo_smoke WHERE id = %s", (event_id,))
    assert row is not None
    aggregate_id, stored, created_at = row
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_type", b"order.placed"),
        ("ce_source", b"outboxkit-demo"),
        ("ce_time", created_at.astimezone(UTC).isoformat().encode()),
        ("ce_subject", aggregate_id.encode()),
        ("content-type", b"application/json"),
    ]
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
        }
    )
    producer.produce(TOPIC, key=aggregate_id.encode(), value=json.dumps(stored).encode(), headers=headers)
    if producer.flush(30) != 0:
        raise SystemExit("Kafka did not acknowledge the event within 30 s")
    echo(f"2. Kafka: published to {TOPIC} with key {aggregate_id}")

    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"outboxkit-demo-{event_id[:8]}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([TOPIC])
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    continue  # not created yet by the producer's metadata request
                raise SystemExit(f"Kafka error: {error}")
            raw = msg.headers() or []
            pairs = raw.items() if isinstance(raw, dict) else raw
            got = {k: v.decode() if isinstance(v, bytes) else (v or "") for k, v in pairs}
            if got.get("ce_id") == event_id:
                echo(
                    f"3. Kafka -> consumer: partition {msg.partition()} offset {msg.offset()}, "
                    f"type {got['ce_type']}, payload {(msg.value() or b'').decode()}"
                )
                echo(f"   at {datetime.now(UTC).isoformat()}: the event made the round trip")
                return
    finally:
        consumer.close()
    raise SystemExit(f"event {event_id} did not come back from Kafka within 30 s")
