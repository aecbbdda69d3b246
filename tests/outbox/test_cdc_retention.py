"""Retention cdc_delete on the write side: publish() deletes its rows in the inserting transaction."""

from __future__ import annotations

import asyncio
import dataclasses

from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import create_async_engine

from outbox import Event, Outbox, OutboxSettings, Retention, publish, publish_many
from outbox.migrations import sqlalchemy_url
from outbox.sql import DELETE_SQL, delete_statement
from tests.outbox.conftest import count_rows
from tests.outbox.models import TEST_OUTBOX

CDC_OUTBOX = dataclasses.replace(TEST_OUTBOX, delete_after_insert=True)


def event(n: int) -> Event:
    return Event(type="order.placed", aggregate_type="order", aggregate_id=str(n), payload={"n": n})


def test_setting_turns_it_on() -> None:
    assert Outbox.from_settings(OutboxSettings(retention=Retention.CDC_DELETE)).delete_after_insert
    assert not Outbox.from_settings(OutboxSettings()).delete_after_insert


def test_delete_statement_names_the_events() -> None:
    events = [TEST_OUTBOX.prepare(event(n)) for n in range(3)]
    query, params = delete_statement(events)
    assert query == DELETE_SQL == "DELETE FROM outbox_events WHERE ce_id = ANY(CAST(:ce_ids AS uuid[]))"
    assert params == {"ce_ids": [e.ce_id for e in events]}


def test_rows_are_gone_at_commit_and_other_rows_stay(engine: Engine) -> None:
    with engine.begin() as conn:
        publish(conn, event(0), outbox=TEST_OUTBOX)  # a row of the ordinary kind stays
    with engine.begin() as conn:
        publish(conn, event(1), outbox=CDC_OUTBOX)
        publish_many(conn, [event(n) for n in range(2, 6)], outbox=CDC_OUTBOX)
        assert count_rows(engine, "outbox_events") == 1  # others see the committed state only
        assert conn.execute(text("SELECT count(*) FROM outbox_events")).scalar_one() == 1
    assert count_rows(engine, "outbox_events") == 1


def test_async_publish_deletes_too(engine: Engine, outbox_url: str) -> None:
    async def scenario() -> None:
        async_engine = create_async_engine(sqlalchemy_url(outbox_url))
        try:
            async with async_engine.begin() as conn:
                await publish(conn, event(1), outbox=CDC_OUTBOX)
                await publish_many(conn, [event(2), event(3)], outbox=CDC_OUTBOX)
        finally:
            await async_engine.dispose()

    asyncio.run(scenario())
    assert count_rows(engine, "outbox_events") == 0
