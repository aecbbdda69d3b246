"""The payments flow end to end, for the README's demo: checkout places orders, the payments
processor (mode kafka) charges them at a flaky fake provider, the inventory processor (mode
database) reserves stock, a projector keeps each order's status; then the money and stock totals
are checked. A relay must be running (checkout and inventory publish through the outbox)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Engine

from outboxkit.examples.payments.checkout import place_order
from outboxkit.examples.payments.flow import Flow
from outboxkit.examples.payments.inventory import build_inventory
from outboxkit.examples.payments.payments import build_payments
from outboxkit.examples.payments.provider import LIMIT_CENTS, FakePaymentProvider
from outboxkit.examples.payments.status import build_status
from outboxkit.examples.payments.tables import charges, metadata, orders, payment_status, reservations, stock
from outboxkit.examples.payments.tables import stock_status as stock_rows
from outboxkit.kafka import clients
from outboxkit.kafka.admin import ensure_topic
from outboxkit.kafka.settings import KafkaSettings
from outboxkit.processors.database_mode import DatabaseProcessorRunner
from outboxkit.processors.kafka_mode import KafkaProcessorRunner
from outboxkit.processors.running import Runner
from projectors.database import engine_for
from projectors.runtime import ProjectorRunner


@dataclass(frozen=True)
class Totals:
    """What one run's orders came to, from each service's own tables."""

    orders: int
    charged_orders: int
    """Orders whose status is paid (the projection)."""
    charges: int
    """Charges at the provider (its ledger), one per paid order if nothing was doubled."""
    charged_cents: int
    """Money the provider took."""
    expected_cents: int
    """What checkout's orders under the provider's limit add up to."""
    declined: int
    reserved_units: int
    """Units reserved by inventory (its reservations)."""
    stock_taken: int
    """Units gone from inventory's stock (initial less available)."""
    out_of_stock: int
    provider_failures: int
    """Requests the provider failed (time-outs before or after charging), each retried with its key."""

    @property
    def balanced(self) -> bool:
        return (
            self.charges == self.charged_orders
            and self.charged_cents == self.expected_cents
            and self.charged_orders + self.declined == self.orders
            and self.reserved_units == self.stock_taken
        )


def run_payments_demo(
    database_url: str,
    kafka: KafkaSettings | str,
    echo: Callable[[str], None] = print,
    *,
    flow: Flow | None = None,
    orders_count: int = 12,
    failure_rate: float = 0.3,
    seed: int = 7,
    timeout: float = 120.0,
) -> Totals:
    flow = flow or Flow()
    admin = clients.admin(kafka)
    for topic in flow.topics:
        ensure_topic(admin, topic, partitions=3)
        ensure_topic(admin, f"{topic}.dlq", partitions=1)
    engine = engine_for(database_url)
    metadata.create_all(engine)  # the example services' own tables
    stamp = f"{time.time_ns() % 10**9:09d}"
    chance = random.Random(seed)
    skus = {f"sku-{stamp}-{n}": 8 for n in range(2)}
    placed = []
    with engine.begin() as conn:
        conn.execute(stock.insert(), [{"sku": sku, "available": n} for sku, n in skus.items()])
        for n in range(orders_count):
            amount = LIMIT_CENTS + 100 if n % 6 == 5 else chance.randrange(500, 20_000)
            order = (f"order-{stamp}-{n}", chance.choice(list(skus)), chance.randint(1, 3), amount)
            place_order(conn, flow, order[0], sku=order[1], quantity=order[2], amount_cents=order[3])
            placed.append(order)
    echo(
        f"16. checkout: placed {orders_count} orders (rows + order.placed through the outbox); "
        f"stock {sum(skus.values())} units of {len(skus)} SKUs"
    )
    provider = FakePaymentProvider(engine, failure_rate=failure_rate, seed=seed)
    runners: list[Runner] = [
        KafkaProcessorRunner(build_payments(flow, provider), kafka),
        DatabaseProcessorRunner(build_inventory(flow), engine, kafka),
        ProjectorRunner(build_status(flow), engine, kafka),
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=r.run, args=(stop,), daemon=True) for r in runners]
    for thread in threads:
        thread.start()
    ids = [order[0] for order in placed]
    try:
        deadline = time.monotonic() + timeout
        while not _settled(engine, ids):
            if time.monotonic() > deadline or not all(t.is_alive() for t in threads):
                raise SystemExit(f"the payments flow did not settle within {timeout:.0f} s")
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    totals = _totals(engine, ids, skus, placed, provider.failures)
    engine.dispose()
    echo(
        f"17. payments (mode kafka; the provider failed {totals.provider_failures} requests, retried "
        "with the same idempotency keys): "
        f"{totals.charged_orders} charged, {totals.declined} declined; the provider's ledger holds "
        f"{totals.charges} charges, {totals.charged_cents} cents "
        f"(orders under the limit: {totals.expected_cents})"
    )
    echo(
        f"18. inventory (mode database): {totals.reserved_units} units reserved, "
        f"{totals.stock_taken} taken from stock, {totals.out_of_stock} orders out of stock"
    )
    if not totals.balanced:
        raise SystemExit(f"the payments flow does not balance: {totals}")
    echo("19. order status projection: every order settled; money and stock balance")
    return totals


def _settled(engine: Engine, ids: list[str]) -> bool:
    """Every order has its payment status, and every paid one its stock status."""
    with engine.connect() as conn:
        paid = dict(
            conn.execute(
                sa.select(payment_status.c.order_id, payment_status.c.status).where(
                    payment_status.c.order_id.in_(ids)
                )
            ).all()
        )
        stocked = set(conn.scalars(sa.select(stock_rows.c.order_id).where(stock_rows.c.order_id.in_(ids))))
    return len(paid) == len(ids) and all(o in stocked for o, s in paid.items() if s == "paid")


def _totals(
    engine: Engine,
    ids: list[str],
    skus: dict[str, int],
    placed: list[tuple[str, str, int, int]],
    failures: int,
) -> Totals:
    with engine.connect() as conn:
        statuses = dict(
            conn.execute(
                sa.select(payment_status.c.order_id, payment_status.c.status).where(
                    payment_status.c.order_id.in_(ids)
                )
            ).all()
        )
        ledger = conn.execute(
            sa.select(charges.c.order_id, charges.c.amount_cents).where(charges.c.order_id.in_(ids))
        ).all()
        reserved = conn.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(reservations.c.quantity), 0)).where(
                reservations.c.order_id.in_(ids)
            )
        )
        available = dict(
            conn.execute(sa.select(stock.c.sku, stock.c.available).where(stock.c.sku.in_(list(skus)))).all()
        )
        unavailable = conn.scalar(
            sa.select(sa.func.count()).where(
                stock_rows.c.order_id.in_(ids), stock_rows.c.status == "out of stock"
            )
        )
        placed_rows = conn.scalar(sa.select(sa.func.count()).where(orders.c.order_id.in_(ids)))
    return Totals(
        orders=int(placed_rows or 0),
        charged_orders=sum(1 for s in statuses.values() if s == "paid"),
        charges=len(ledger),
        charged_cents=sum(amount for _, amount in ledger),
        expected_cents=sum(o[3] for o in placed if o[3] <= LIMIT_CENTS),
        declined=sum(1 for s in statuses.values() if s == "declined"),
        reserved_units=int(reserved or 0),
        stock_taken=sum(skus.values()) - sum(available.values()),
        out_of_stock=int(unavailable or 0),
        provider_failures=failures,
    )
