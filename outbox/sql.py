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


def _insert_sql(notify: bool) -> str:
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


INSERT_SQL = _insert_sql(notify=False)
INSERT_AND_NOTIFY_SQL = _insert_sql(notify=True)


def lock_key(aggregate_type: str, aggregate_id: str) -> str:
    """Text hashed into the aggregate's advisory lock (`hashtextextended(key, 0)`).

    Hand-written SQL that writes an aggregate's events takes the same lock to keep the order.
    """
    return f"{aggregate_type}\x1f{aggregate_id}"


def insert_statement(events: Sequence[StoredEvent], notify_channel: str | None) -> tuple[str, dict[str, Any]]:
    """INSERT of `events` in their order, after locking their aggregates; NOTIFY when a channel is given."""
    params: dict[str, Any] = {
        "lock_keys": sorted({lock_key(e.aggregate_type, e.aggregate_id) for e in events}),
        "ce_id": [e.ce_id for e in events],
        "ce_type": [e.ce_type for e in events],
        "ce_source": [e.ce_source for e in events],
        "ce_time": [e.ce_time for e in events],
        "aggregate_type": [e.aggregate_type for e in events],
        "aggregate_id": [e.aggregate_id for e in events],
        "topic": [e.topic for e in events],
        "content_type": [e.content_type for e in events],
        "payload": [e.payload for e in events],
        "headers": [orjson.dumps(dict(e.headers)).decode() for e in events],
        "traceparent": [e.traceparent for e in events],
    }
    if notify_channel is None:
        return INSERT_SQL, params
    params["channel"] = notify_channel
    return INSERT_AND_NOTIFY_SQL, params
