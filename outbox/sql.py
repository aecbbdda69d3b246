"""The SQL that publish() sends: plain (query, parameters) values, unit-testable without a database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from outbox.envelope import StoredEvent
from outbox.schema import INSERT_COLUMNS, TABLE

# Array types for unnest(): one parameter per column, so the statement text is the same for one
# event or ten thousand (the server prepares it once) and no parameter limit applies.
_ARRAY_TYPES = {
    "ce_id": "uuid[]",
    "payload": "bytea[]",
    "headers": "text[]",
}
_CAST_BACK = {"headers": "jsonb"}
_SCALAR_TYPES = {"ce_id": "uuid", "payload": "bytea", "headers": "jsonb"}


def _many_sql(notify: bool) -> str:
    arrays = ", ".join(f"CAST(:{col} AS {_ARRAY_TYPES.get(col, 'text[]')})" for col in INSERT_COLUMNS)
    selected = ", ".join(
        f"e.{col}::{_CAST_BACK[col]}" if col in _CAST_BACK else f"e.{col}" for col in INSERT_COLUMNS
    )
    notify_sql = ", pg_notify(:channel, '')" if notify else ""
    # Commit order per aggregate, by construction. The relay publishes the visible unpublished
    # rows in `id` order and deletes/marks them: it keeps no cursor, so a row that commits late is
    # never skipped. What remains is that, for one aggregate, id order must equal commit order.
    # `id` comes from an identity sequence when the row is inserted, and two transactions could
    # draw ids in one order and commit in the other. So every insert first takes a transaction-
    # scoped advisory lock per aggregate (64-bit hash of type and id), held until commit or
    # rollback: a second writer of the same aggregate blocks in the `locks` CTE, and draws its
    # ids only after the first writer has committed (or rolled back). Ids of one aggregate are
    # therefore in commit order. The CTE aggregates over all keys before it yields its one row,
    # so every lock is held before any id is drawn; keys arrive sorted and unnest keeps array
    # order, so two writers that touch the same aggregates lock them in the same order and cannot
    # deadlock each other inside one call. NOTIFY (optional) rides in the same statement: one
    # round trip per publish() call.
    return (
        "WITH locks AS ("
        " SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) AS n"
        f"{notify_sql}"
        " FROM unnest(CAST(:lock_keys AS text[])) AS k"
        f") INSERT INTO {TABLE} ({', '.join(INSERT_COLUMNS)})"
        f" SELECT {selected}"
        f" FROM locks, unnest({arrays}) WITH ORDINALITY"
        f" AS e({', '.join(INSERT_COLUMNS)}, ord)"
        " ORDER BY e.ord"
    )


def _single_sql(notify: bool) -> str:
    # The same lock-then-insert as _many_sql (see there for the ordering argument) for the common
    # case of one event, with scalar parameters: binding eleven one-element arrays costs the
    # client more than the server spends on the whole statement.
    notify_sql = ", pg_notify(:channel, '')" if notify else ""
    selected = ", ".join(f"CAST(:{col} AS {_SCALAR_TYPES.get(col, 'text')})" for col in INSERT_COLUMNS)
    return (
        "WITH locks AS ("
        f" SELECT pg_advisory_xact_lock(hashtextextended(:lock_key, 0)){notify_sql}"
        f") INSERT INTO {TABLE} ({', '.join(INSERT_COLUMNS)})"
        f" SELECT {selected} FROM locks"
    )


SQL = {
    (False, False): _many_sql(notify=False),
    (False, True): _many_sql(notify=True),
    (True, False): _single_sql(notify=False),
    (True, True): _single_sql(notify=True),
}
"""The four statement texts, by (single event?, notify?)."""


def lock_key(aggregate_type: str, aggregate_id: str) -> str:
    """Text hashed into the aggregate's advisory lock (`hashtextextended(key, 0)`).

    Hand-written SQL that writes an aggregate's events takes the same lock to keep the order.
    """
    return f"{aggregate_type}\x1f{aggregate_id}"


def insert_statement(events: Sequence[StoredEvent], notify_channel: str | None) -> tuple[str, dict[str, Any]]:
    """INSERT of `events` in their order, after locking their aggregates; NOTIFY when a channel is given."""
    if len(events) == 1:
        [event] = events
        params: dict[str, Any] = {
            "lock_key": lock_key(event.aggregate_type, event.aggregate_id),
            **_row(event),
        }
    else:
        rows = [_row(event) for event in events]
        params = {col: [row[col] for row in rows] for col in INSERT_COLUMNS}
        params["lock_keys"] = sorted({lock_key(e.aggregate_type, e.aggregate_id) for e in events})
    if notify_channel is not None:
        params["channel"] = notify_channel
    return SQL[len(events) == 1, notify_channel is not None], params


DELETE_SQL = f"DELETE FROM {TABLE} WHERE ce_id = ANY(CAST(:ce_ids AS uuid[]))"
"""Retention cdc_delete: the rows just inserted, in the same transaction (see delete_statement)."""


def delete_statement(events: Sequence[StoredEvent]) -> tuple[str, dict[str, Any]]:
    """DELETE of the rows `insert_statement` just wrote (retention cdc_delete).

    A second statement, because a data-modifying CTE cannot see the rows its sibling inserts. The
    WAL still carries the INSERT, which Debezium publishes; the router drops the DELETE.
    """
    return DELETE_SQL, {"ce_ids": [event.ce_id for event in events]}


def _row(event: StoredEvent) -> dict[str, Any]:
    return {
        "ce_id": event.ce_id,
        "ce_type": event.ce_type,
        "ce_source": event.ce_source,
        "ce_time": event.ce_time,
        "aggregate_type": event.aggregate_type,
        "aggregate_id": event.aggregate_id,
        "topic": event.topic,
        "content_type": event.content_type,
        "payload": event.payload,
        "headers": orjson.dumps(dict(event.headers)).decode(),
        "traceparent": event.traceparent,
    }
