"""The inventory processor (mode database): `payment.charged` -> a stock reservation in its own
tables and `stock.reserved` (or `stock.unavailable`) through the outbox, in one PostgreSQL
transaction with the input positions."""

from __future__ import annotations

import sqlalchemy as sa

from outboxkit.examples.payments.flow import Flow
from outboxkit.examples.payments.tables import reservations, stock
from outboxkit.processors import Context, Processor, ProcessorConfig, ReceivedEvent


def build_inventory(flow: Flow) -> Processor:
    """Reads `flow.payments`; its outputs go through the outbox to `flow.stock`."""
    config = ProcessorConfig(output_topic=flow.topic_template)
    processor = Processor(flow.name("inventory"), [flow.payments], mode="database", config=config)

    @processor.handles("payment.charged")
    def reserve(event: ReceivedEvent, context: Context) -> None:
        conn = context.connection
        assert conn is not None
        order = event.payload
        taken = conn.execute(
            sa.update(stock)
            .where(stock.c.sku == order["sku"], stock.c.available >= order["quantity"])
            .values(available=stock.c.available - order["quantity"])
        ).rowcount
        if taken != 1:
            context.emit("stock.unavailable", order, aggregate_type="stock", aggregate_id=order["order_id"])
            return
        conn.execute(
            reservations.insert().values(
                order_id=order["order_id"], sku=order["sku"], quantity=order["quantity"]
            )
        )
        context.emit("stock.reserved", order, aggregate_type="stock", aggregate_id=order["order_id"])

    return processor
