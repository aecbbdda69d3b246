"""The order-status projection: each order's payment and stock state from the processors' events."""

from __future__ import annotations

from sqlalchemy import Connection

from outboxkit.examples.payments.flow import Flow
from outboxkit.examples.payments.tables import metadata, payment_status, stock_status
from outboxkit.kafka.records import ReceivedEvent
from projectors.projector import Projector
from projectors.versioning import version_of, versioned_upsert


def build_status(flow: Flow) -> Projector:
    """Reads `flow.payments` and `flow.stock`."""
    projector = Projector(flow.name("order-status"), [flow.payments, flow.stock], metadata=metadata)
    payment = versioned_upsert(payment_status, ["order_id"], columns=["status", "amount_cents"])
    stock = versioned_upsert(stock_status, ["order_id"], columns=["status"])

    @projector.handles("payment.charged", "payment.declined")
    def paid(event: ReceivedEvent, conn: Connection) -> None:
        order = event.payload
        status = "paid" if event.type == "payment.charged" else "declined"
        amount = order.get("charged_cents", 0)
        conn.execute(
            payment,
            {"order_id": order["order_id"], "status": status, "amount_cents": amount, **version_of(event)},
        )

    @projector.handles("stock.reserved", "stock.unavailable")
    def reserved(event: ReceivedEvent, conn: Connection) -> None:
        status = "reserved" if event.type == "stock.reserved" else "out of stock"
        conn.execute(stock, {"order_id": event.payload["order_id"], "status": status, **version_of(event)})

    return projector
