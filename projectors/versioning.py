"""Row-level offset-as-version: write a read-model row only if the event is newer than the row.

A row stores the (partition, offset) of the last event that wrote it. Offsets grow within a
partition, and all events of one aggregate (one Kafka key) share a partition, so for a row fed by
one aggregate "newer" is exact: a redelivery or a replay from offset 0 writes nothing. For a row
fed by several partitions the order (partition, offset) is arbitrary across partitions but fixed,
so any replay still ends in the same state.

Caveat: adding partitions to a topic moves keys to other partitions. An aggregate's next event can
then carry a (partition, offset) *below* its row's version and be dropped silently. The runtime
stores each topic's partition count with its offsets and refuses to start when it changed
(`PartitionCountChangedError`); rebuild the read model (`outbox projector rebuild NAME`) after
changing the partition count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Table
from sqlalchemy.dialects.postgresql import ARRAY, Insert, insert

from projectors.record import ReceivedEvent

PARTITION_COLUMN = "source_partition"
OFFSET_COLUMN = "source_offset"

Excluded = Any
"""`insert(...).excluded`: the row that was proposed for insertion (PostgreSQL's EXCLUDED)."""


def version_columns(
    partition_column: str = PARTITION_COLUMN, offset_column: str = OFFSET_COLUMN
) -> tuple[sa.Column[int], sa.Column[int]]:
    """The two version columns to put in a read-model table."""
    return (
        sa.Column(partition_column, sa.Integer, nullable=False),
        sa.Column(offset_column, sa.BigInteger, nullable=False),
    )


def version_of(
    event: ReceivedEvent, partition_column: str = PARTITION_COLUMN, offset_column: str = OFFSET_COLUMN
) -> dict[str, int]:
    """The version values of a row written by `event`."""
    return {partition_column: event.partition, offset_column: event.offset}


def newer_than_row(
    table: Table,
    partition: Any,
    offset: Any,
    *,
    partition_column: str = PARTITION_COLUMN,
    offset_column: str = OFFSET_COLUMN,
) -> ColumnElement[bool]:
    """WHERE clause for hand-written UPDATEs: the row's version is older than (partition, offset)."""
    return sa.tuple_(table.c[partition_column], table.c[offset_column]) < sa.tuple_(partition, offset)


def versioned_upsert(
    table: Table,
    key: Sequence[str],
    *,
    columns: Sequence[str] | None = None,
    update: Callable[[Excluded], Mapping[str, Any]] | None = None,
    guarded: bool = True,
    partition_column: str = PARTITION_COLUMN,
    offset_column: str = OFFSET_COLUMN,
) -> Insert:
    """INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE row version < incoming version.

    Execute it with one row (each with the version columns, see `version_of`). On conflict it
    sets `columns` (default: every non-key column of the table) from the incoming row, then the
    expressions `update(excluded)` returns (e.g. appending to an array), and the version.
    `guarded=False` drops the WHERE (only to measure what the guard costs).
    """
    return on_conflict_newer(
        insert(table),
        table,
        key,
        columns=columns,
        update=update,
        guarded=guarded,
        partition_column=partition_column,
        offset_column=offset_column,
    )


def versioned_upsert_many(
    table: Table,
    key: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
    *,
    columns: Sequence[str] | None = None,
    update: Callable[[Excluded], Mapping[str, Any]] | None = None,
    guarded: bool = True,
    partition_column: str = PARTITION_COLUMN,
    offset_column: str = OFFSET_COLUMN,
) -> Insert:
    """`versioned_upsert` of many rows as ONE statement: each column travels as one array
    (`INSERT ... SELECT unnest(:a), unnest(:b) ...`), so a batch costs one round trip whatever its
    size. Rows sharing a key are reduced to the newest first. Scalar columns only (an array column
    would be flattened by unnest)."""
    newest = newest_per_key(rows, key, partition_column=partition_column, offset_column=offset_column)
    names = list(newest[0]) if newest else [*key, partition_column, offset_column]
    arrays = [
        sa.func.unnest(sa.bindparam(f"many_{i}", [r[n] for r in newest], type_=ARRAY(table.c[n].type)))
        for i, n in enumerate(names)
    ]
    statement = insert(table).from_select(names, sa.select(*arrays))
    return on_conflict_newer(
        statement,
        table,
        key,
        columns=[n for n in names if n not in key] if columns is None else columns,
        update=update,
        guarded=guarded,
        partition_column=partition_column,
        offset_column=offset_column,
    )


def on_conflict_newer(
    statement: Insert,
    table: Table,
    key: Sequence[str],
    *,
    columns: Sequence[str] | None = None,
    update: Callable[[Excluded], Mapping[str, Any]] | None = None,
    guarded: bool = True,
    partition_column: str = PARTITION_COLUMN,
    offset_column: str = OFFSET_COLUMN,
) -> Insert:
    """Add the versioned ON CONFLICT ... DO UPDATE ... WHERE clause to an INSERT into `table`."""
    excluded = statement.excluded
    version = {partition_column, offset_column}
    names = columns if columns is not None else [c.name for c in table.columns if c.name not in key]
    assignments: dict[str, Any] = {name: excluded[name] for name in names if name not in version}
    if update is not None:
        assignments.update(update(excluded))
    assignments[partition_column] = excluded[partition_column]
    assignments[offset_column] = excluded[offset_column]
    where = (
        newer_than_row(
            table,
            excluded[partition_column],
            excluded[offset_column],
            partition_column=partition_column,
            offset_column=offset_column,
        )
        if guarded
        else None
    )
    return statement.on_conflict_do_update(index_elements=list(key), set_=assignments, where=where)


def newest_per_key(
    rows: Iterable[Mapping[str, Any]],
    key: Sequence[str],
    *,
    partition_column: str = PARTITION_COLUMN,
    offset_column: str = OFFSET_COLUMN,
) -> list[Mapping[str, Any]]:
    """Of rows sharing a key keep the newest, for one multi-row upsert (PostgreSQL refuses to update
    a row twice in one statement). Right for rows that carry the whole state, not for increments."""
    newest: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for row in rows:
        k = tuple(row[c] for c in key)
        kept = newest.get(k)
        if kept is None or (kept[partition_column], kept[offset_column]) < (
            row[partition_column],
            row[offset_column],
        ):
            newest[k] = row
    return list(newest.values())
