"""The README's demo: a shop writes orders and their events atomically, the polling relay publishes
them to Kafka in commit order, and a consumer reads them back — printing each step."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import psycopg
from confluent_kafka import KafkaError
from sqlalchemy import create_engine, pool
from sqlalchemy.orm import Session

from outbox import OutboxSettings, migrations
from outbox.config import mask_url
from outbox.envelope import from_kafka
from outboxkit.examples.config.demo import run_config_demo
from outboxkit.examples.payments.demo import run_payments_demo
from outboxkit.examples.sites.demo import run_sites_demo
from outboxkit.kafka import clients
from outboxkit.kafka.settings import KafkaSettings
from relay.cdc import CdcSettings, connector_config
from relay.connect import ConnectClient
from relay.polling import PollingRelay
from relay.settings import RelaySettings
from relay.slot import drop_publication, drop_slot_when_released

Echo = Callable[[str], None]


def kafka_of(settings: OutboxSettings) -> KafkaSettings:
    """The cluster and its login (OUTBOX_KAFKA_...), with the demo's brokers."""
    return KafkaSettings.load(bootstrap_servers=settings.kafka_bootstrap_servers)


def run_demo(settings: OutboxSettings, echo: Echo = print, relay: str = "polling") -> None:
    """The demo with the polling relay (in this process) or CDC (Debezium in Kafka Connect)."""
    from outboxkit.examples.shop.models import Base, Order

    echo(f"0. PostgreSQL {mask_url(settings.database_url)}: applying outboxkit's migrations")
    migrations.upgrade(settings.database_url)
    engine = create_engine(migrations.sqlalchemy_url(settings.database_url), poolclass=pool.NullPool)
    Base.metadata.create_all(engine)  # the example's own domain table
    run = uuid.uuid4().hex[:6]
    stop_relay = start_cdc(settings, run, echo) if relay == "cdc" else start_polling(settings, run, echo)
    try:
        orders = [f"order-{run}-{n}" for n in (1, 2)]
        with Session(engine) as session, session.begin():
            for n, order_id in enumerate(orders, 1):
                session.add(Order.place(order_id, customer=f"customer-{n}", total_cents=1250 * n))
        echo(f"2. shop: placed {orders[0]} and {orders[1]} (rows + order.placed events, one transaction)")
        with Session(engine) as session, session.begin():
            first = session.get_one(Order, orders[0])
            first.pay()
            first.ship("parcel-post")
        echo(f"3. shop: {orders[0]} paid and shipped (order.paid, order.shipped in one transaction)")
        with Session(engine) as session, session.begin():
            ghost = Order.place(f"order-{run}-rolled-back", customer="nobody", total_cents=1)
            session.add(ghost)
            session.flush()
            session.rollback()
        echo(f"4. shop: order-{run}-rolled-back placed, then rolled back: neither row nor event exists")
        received = read_back("shop.order", run, expected=4, settings=settings, echo=echo)
        if received != 4:
            raise SystemExit(f"expected 4 events of this run on Kafka, got {received}")
        echo("6. shop: 4 events made the round trip, none of the rolled-back order")
        # Consume and project (seed §1): the sites service's events build a read model elsewhere.
        run_sites_demo(settings.database_url, kafka_of(settings), echo)
        # 0-latency KV store (seed §4): configuration read per request from a local copy of a topic.
        run_config_demo(settings.database_url, kafka_of(settings), echo)
        # Events in transactions (seed §5): payments and inventory as exactly-once processors.
        run_payments_demo(settings.database_url, kafka_of(settings), echo)
    finally:
        stop_relay()
        engine.dispose()
    echo("done.")


def start_polling(settings: OutboxSettings, run: str, echo: Echo) -> Callable[[], None]:
    relay = PollingRelay(settings, RelaySettings(group=f"demo-{run}", metrics_port=0, poll_interval=0.2))
    thread = threading.Thread(target=relay.run, name="relay", daemon=True)
    thread.start()
    echo("1. relay: polling relay started (idempotent producer, commit order per aggregate)")

    def stop() -> None:
        relay.stop()
        thread.join(30)

    return stop


def start_cdc(settings: OutboxSettings, run: str, echo: Echo) -> Callable[[], None]:
    """Register a Debezium connector of the demo's own (slot, publication), removed at the end."""
    cdc = CdcSettings(
        connector_name=f"outboxkit-demo-{run}",
        slot_name=f"outboxkit_demo_{run}",
        publication=f"outboxkit_demo_{run}",
        exactly_once=True,
    )
    with ConnectClient(settings.connect_url) as client:
        client.put_config(cdc.connector_name, connector_config(settings, cdc))
        client.wait(cdc.connector_name, timeout=120)
    echo(f"1. relay: Debezium connector {cdc.connector_name} running in Kafka Connect (exactly once)")

    def stop() -> None:
        with ConnectClient(settings.connect_url) as client:
            client.delete(cdc.connector_name)
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            drop_slot_when_released(conn, cdc.slot_name)
            drop_publication(conn, cdc.publication)
            # CDC leaves published rows in the table (see OUTBOX_RETENTION=cdc_delete): the demo's go.
            conn.execute("DELETE FROM outbox_events WHERE aggregate_id LIKE %s", (f"%-{run}-%",))

    return stop


def read_back(topic: str, run: str, *, expected: int, settings: OutboxSettings, echo: Echo) -> int:
    consumer = clients.consumer(kafka_of(settings), f"outboxkit-demo-{run}")
    consumer.subscribe([topic])
    received = 0
    deadline = time.monotonic() + 30
    try:
        while received < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    continue  # created by the relay's first record
                raise SystemExit(f"Kafka error: {error}")
            event = from_kafka(msg.topic() or topic, msg.key(), msg.value(), msg.headers())  # type: ignore[arg-type]
            if f"-{run}-" not in event.subject:
                continue  # an earlier demo run's event
            received += 1
            echo(
                f"5. kafka {event.topic}[{msg.partition()}]@{msg.offset()}: {event.type:<14} "
                f"key={event.subject} ce_id={event.id} data={event.data.decode()}"
            )
    finally:
        consumer.close()
    return received
