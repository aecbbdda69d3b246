"""The shop's domain: an Order aggregate whose changes are recorded as events in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from outbox import AggregateRoot, Outbox, TopicRouter

# Every shop event goes to topic `shop.<aggregate type>`, e.g. shop.order.
SHOP_OUTBOX = Outbox(source="shop", router=TopicRouter("shop.{aggregate_type}"))


class Base(DeclarativeBase):
    pass


@dataclass(frozen=True)
class OrderPlaced:
    __event_type__ = "order.placed"
    order_id: str
    customer: str
    total_cents: int


@dataclass(frozen=True)
class OrderPaid:
    __event_type__ = "order.paid"
    order_id: str
    amount_cents: int


@dataclass(frozen=True)
class OrderShipped:
    __event_type__ = "order.shipped"
    order_id: str
    carrier: str


class Order(AggregateRoot, Base):
    __tablename__ = "shop_orders"
    __outbox_aggregate_type__ = "order"
    __outbox__ = SHOP_OUTBOX

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer: Mapped[str] = mapped_column(String(100))
    total_cents: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="placed")

    @classmethod
    def place(cls, order_id: str, customer: str, total_cents: int) -> Order:
        order = cls(id=order_id, customer=customer, total_cents=total_cents, status="placed")
        order.record(OrderPlaced(order_id, customer, total_cents))
        return order

    def pay(self) -> None:
        self.status = "paid"
        self.record(OrderPaid(self.id, self.total_cents))

    def ship(self, carrier: str) -> None:
        self.status = "shipped"
        self.record(OrderShipped(self.id, carrier))
