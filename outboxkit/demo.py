"""The README's demo: a shop writes orders and their events atomically, the polling relay publishes
them to Kafka in commit order, and a consumer reads them back — printing each step."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError
from sqlalchemy import create_engine, pool, text
from sqlalchemy.orm import Session

from examples.sites.demo import run_sites_demo
from outbox import OutboxSettings, migrations
from outbox.envelope import from_kafka
from relay.polling import PollingRelay
from relay.settings import RelaySettings

Echo = Callable[[str], None]


def run_demo(settings: OutboxSettings, echo: Echo = print) -> None:
    from examples.shop.models import Base, Order

    echo(f"0. PostgreSQL {settings.database_url}: applying outboxkit's migrations")
    migrations.upgrade(settings.database_url)
    engine = create_engine(migrations.sqlalchemy_url(settings.database_url), poolclass=pool.NullPool)
    Base.metadata.create_all(engine)  # the example's own domain table

    run = uuid.uuid4().hex[:6]
    orders = [f"order-{run}-{n}" for n in (1, 2)]
    with Session(engine) as session, session.begin():
        for n, order_id in enumerate(orders, 1):
            session.add(Order.place(order_id, customer=f"customer-{n}", total_cents=1250 * n))
    echo(f"1. shop: placed {orders[0]} and {orders[1]} (rows + order.placed events, one transaction)")
    with Session(engine) as session, session.begin():
        first = session.get_one(Order, orders[0])
        first.pay()
        first.ship("parcel-post")
    echo(f"2. shop: {orders[0]} paid and shipped (order.paid, order.shipped in one transaction)")
    with Session(engine) as session, session.begin():
        ghost = Order.place(f"order-{run}-rolled-back", customer="nobody", total_cents=1)
        session.add(ghost)
        session.flush()
        session.rollback()
    echo(f"3. shop: order-{run}-rolled-back placed, then rolled back: neither row nor event exists")
    with engine.connect() as conn:
        waiting = conn.execute(
            text("SELECT count(*) FROM outbox_events WHERE aggregate_id LIKE :p"), {"p": f"order-{run}-%"}
        ).scalar_one()
    echo(f"   outbox: {waiting} events waiting for the relay")

    relay = PollingRelay(settings, RelaySettings(group=f"demo-{run}", metrics_port=0, poll_interval=0.2))
    thread = threading.Thread(target=relay.run, name="relay", daemon=True)
    thread.start()
    echo("4. relay: polling relay started (idempotent producer, commit order per aggregate)")
    try:
        received = read_back("shop.order", run, expected=4, settings=settings, echo=echo)
        if received != 4:
            raise SystemExit(f"expected 4 events of this run on Kafka, got {received}")
        with engine.connect() as conn:
            left = conn.execute(
                text("SELECT count(*) FROM outbox_events WHERE aggregate_id LIKE :p"), {"p": f"order-{run}-%"}
            ).scalar_one()
        echo(
            f"6. shop: 4 events made the round trip, none of the rolled-back order; {left} left in the outbox"
        )
        # Consume and project (seed §1): the sites service's events build a read model elsewhere.
        run_sites_demo(settings.database_url, settings.kafka_bootstrap_servers, echo)
    finally:
        relay.stop()
        thread.join(30)
        engine.dispose()
    echo("done.")


def read_back(topic: str, run: str, *, expected: int, settings: OutboxSettings, echo: Echo) -> int:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"outboxkit-demo-{run}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
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
