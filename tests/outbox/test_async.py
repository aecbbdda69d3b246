"""publish() and the mixin with SQLAlchemy's asyncio API on the psycopg async driver."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from outbox import Event, publish, publish_many
from outbox.migrations import sqlalchemy_url
from tests.outbox.conftest import count_rows, outbox_rows
from tests.outbox.models import TEST_OUTBOX, Order, OrderPlaced


def event(n: int) -> Event:
    return Event(type="order.placed", aggregate_type="order", aggregate_id=str(n), payload={"n": n})


def run(outbox_url: str, scenario: Callable[[AsyncEngine], Awaitable[None]]) -> None:
    async def main() -> None:
        engine = create_async_engine(sqlalchemy_url(outbox_url))
        try:
            await scenario(engine)
        finally:
            await engine.dispose()

    asyncio.run(main())


def test_async_session_commit_and_rollback(engine: Engine, outbox_url: str) -> None:
    committed, rolled_back = event(1), event(2)

    async def scenario(async_engine: AsyncEngine) -> None:
        async with AsyncSession(async_engine) as session, session.begin():
            session.add(Order(id=1))
            await publish(session, committed, outbox=TEST_OUTBOX)
        async with AsyncSession(async_engine) as session:
            session.add(Order(id=2))
            await publish(session, rolled_back, outbox=TEST_OUTBOX)
            await session.flush()
            await session.rollback()

    run(outbox_url, scenario)
    assert [row["ce_id"] for row in outbox_rows(engine)] == [committed.id]
    assert count_rows(engine, "orders") == 1


def test_async_connection_and_savepoint(engine: Engine, outbox_url: str) -> None:
    events = [event(n) for n in range(10)]

    async def scenario(async_engine: AsyncEngine) -> None:
        async with async_engine.begin() as conn:
            await conn.execute(text("INSERT INTO orders (id, status) VALUES (3, 'new')"))
            await publish_many(conn, events[:5], outbox=TEST_OUTBOX)
            savepoint = await conn.begin_nested()
            await publish_many(conn, events[5:], outbox=TEST_OUTBOX)
            await savepoint.rollback()

    run(outbox_url, scenario)
    assert [row["ce_id"] for row in outbox_rows(engine)] == [e.id for e in events[:5]]


def test_mixin_with_async_session(engine: Engine, outbox_url: str) -> None:
    async def scenario(async_engine: AsyncEngine) -> None:
        async with AsyncSession(async_engine) as session, session.begin():
            order = Order(status="placed")
            session.add(order)
            order.record(OrderPlaced(order_id=0, total_cents=42))

    run(outbox_url, scenario)
    [row] = outbox_rows(engine)
    assert row["ce_type"] == "order.placed"
    assert row["aggregate_id"].isdigit()
