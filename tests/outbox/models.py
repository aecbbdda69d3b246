"""Domain models of the tests: a small shop whose aggregates record events."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from outbox import AggregateRoot, Outbox

TEST_OUTBOX = Outbox(source="tests", notify_channel=None)


class Base(DeclarativeBase):
    pass


@dataclass(frozen=True)
class OrderPlaced:
    __event_type__ = "order.placed"
    order_id: int
    total_cents: int


@dataclass(frozen=True)
class OrderShipped:
    __event_type__ = "order.shipped"
    order_id: int


class Order(AggregateRoot, Base):
    __tablename__ = "orders"
    __outbox_aggregate_type__ = "order"
    __outbox__ = TEST_OUTBOX

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="new")


class Customer(AggregateRoot, Base):
    """Aggregate type from the table name; id assigned by the application."""

    __tablename__ = "customers"
    __outbox__ = TEST_OUTBOX

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
