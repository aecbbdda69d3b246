"""Checkout: an order row and its `order.placed` event, in one transaction (the outbox)."""

from __future__ import annotations

from sqlalchemy import Connection

from outbox import Event
from outboxkit.examples.payments.flow import Flow
from outboxkit.examples.payments.tables import orders


def place_order(
    conn: Connection, flow: Flow, order_id: str, *, sku: str, quantity: int, amount_cents: int
) -> None:
    """Write the order and its event in the caller's transaction (never commits)."""
    conn.execute(
        orders.insert().values(order_id=order_id, sku=sku, quantity=quantity, amount_cents=amount_cents)
    )
    payload = {"order_id": order_id, "sku": sku, "quantity": quantity, "amount_cents": amount_cents}
    event = Event(type="order.placed", aggregate_type="order", aggregate_id=order_id, payload=payload)
    flow.outbox("checkout").publish_many(conn, [event])
