"""The payments example against the real stack: a flaky provider (30 % of requests fail, half of
them after charging), and still one charge per paid order and exact money and stock totals."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from outbox import OutboxSettings, migrations
from outboxkit.examples.demo import start_polling
from outboxkit.examples.payments.demo import run_payments_demo
from outboxkit.examples.payments.flow import Flow
from outboxkit.examples.payments.tables import charges


def test_the_payments_flow_balances_with_a_flaky_provider(
    new_database: Callable[[], str], bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    url = new_database()
    migrations.upgrade(url)
    settings = OutboxSettings.load(database_url=url, kafka_bootstrap_servers=bootstrap_servers)
    lines: list[str] = []
    stop_relay = start_polling(settings, unique("payments"), lines.append)
    try:
        totals = run_payments_demo(
            url,
            bootstrap_servers,
            lines.append,
            flow=Flow(unique("payments")),
            orders_count=24,
            failure_rate=0.3,
        )
    finally:
        stop_relay()
    assert totals.balanced, totals
    assert totals.orders == 24 and totals.declined == 4, "every sixth order is over the provider's limit"
    assert totals.charges == totals.charged_orders == 20
    assert totals.provider_failures >= 3, "the provider failed some requests, retried with their keys"
    assert totals.out_of_stock > 0 and totals.reserved_units == totals.stock_taken <= 16
    engine = sa.create_engine(migrations.sqlalchemy_url(url))
    with engine.connect() as conn:
        per_order = conn.execute(
            sa.select(charges.c.order_id, sa.func.count()).group_by(charges.c.order_id)
        ).all()
    engine.dispose()
    assert {n for _, n in per_order} == {1}, "one charge per order at the provider"
    assert any(line.startswith("19. order status projection") for line in lines), lines
