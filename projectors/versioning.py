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
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Table
from sqlalchemy.dialects.postgresql import ARRAY, Insert, insert

from outboxkit.kafka.records import ReceivedEvent

Excluded = Any
"""`insert(...).excluded`: the row that was proposed for insertion (PostgreSQL's EXCLUDED)."""
Update = Callable[[Excluded], Mapping[str, Any]]
"""Extra SET expressions on conflict, given EXCLUDED (e.g. appending to an array column)."""


@dataclass(frozen=True)
class RowVersion:
    """The names of a read-model table's two version columns."""

    partition: str = "source_partition"
    offset: str = "source_offset"

    def columns(self) -> tuple[sa.Column[int], sa.Column[int]]:
        """The two version columns to put in a read-model table."""
        return (
            sa.Column(self.partition, sa.Integer, nullable=False),
            sa.Column(self.offset, sa.BigInteger, nullable=False),
        )

    def of(self, event: ReceivedEvent) -> dict[str, int]:
        """The version values of a row written by `event`."""
        return {self.partition: event.partition, self.offset: event.offset}

    def newer_than_row(self, table: Table, partition: Any, offset: Any) -> ColumnElement[bool]:
        """WHERE clause: the row's version is older than (partition, offset)."""
        return sa.tuple_(table.c[self.partition], table.c[self.offset]) < sa.tuple_(partition, offset)

    def newest_per_key(
        self, rows: Iterable[Mapping[str, Any]], key: Sequence[str]
    ) -> list[Mapping[str, Any]]:
        """Of rows sharing a key keep the newest, for one multi-row upsert (PostgreSQL refuses to
        update a row twice in one statement). Right for rows that carry the whole state."""
        newest: dict[tuple[Any, ...], Mapping[str, Any]] = {}
        for row in rows:
            k = tuple(row[c] for c in key)
            kept = newest.get(k)
            if kept is None or (kept[self.partition], kept[self.offset]) < (
                row[self.partition],
                row[self.offset],
            ):
                newest[k] = row
        return list(newest.values())


ROW_VERSION = RowVersion()
"""The default version columns, `source_partition` and `source_offset`."""


def version_columns() -> tuple[sa.Column[int], sa.Column[int]]:
    """The default version columns for a read-model table."""
    return ROW_VERSION.columns()


def version_of(event: ReceivedEvent) -> dict[str, int]:
    """The default version values of a row written by `event`."""
    return ROW_VERSION.of(event)


def newer_than_row(table: Table, partition: Any, offset: Any) -> ColumnElement[bool]:
    """WHERE clause for hand-written UPDATEs: the row's version is older than (partition, offset)."""
    return ROW_VERSION.newer_than_row(table, partition, offset)


def versioned_upsert(
    table: Table,
    key: Sequence[str],
    *,
    columns: Sequence[str] | None = None,
    update: Update | None = None,
    guarded: bool = True,
    version: RowVersion = ROW_VERSION,
) -> Insert:
    """INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE row version < incoming version.

    Execute it with one row (with the version columns, see `version_of`). On conflict it sets
    `columns` (default: every non-key column of the table) from the incoming row, then what
    `update(excluded)` returns, and the version. `guarded=False` drops the WHERE (only to measure
    what the guard costs).
    """
    statement = insert(table)
    return on_conflict_newer(
        statement, table, key, columns=columns, update=update, guarded=guarded, version=version
    )


def versioned_upsert_many(
    table: Table,
    key: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
    *,
    update: Update | None = None,
    guarded: bool = True,
    version: RowVersion = ROW_VERSION,
) -> Insert:
    """`versioned_upsert` of many rows as ONE statement: each column travels as one array
    (`INSERT ... SELECT unnest(:a), unnest(:b) ...`), so a batch costs one round trip whatever its
    size. Rows sharing a key are reduced to the newest first; the rows' columns are set on
    conflict. Scalar columns only (unnest would flatten an array column)."""
    newest = version.newest_per_key(rows, key)
    names = list(newest[0]) if newest else [*key, version.partition, version.offset]
    arrays = [
        sa.func.unnest(sa.bindparam(f"many_{i}", [r[n] for r in newest], type_=ARRAY(table.c[n].type)))
        for i, n in enumerate(names)
    ]
    statement = insert(table).from_select(names, sa.select(*arrays))
    columns = [n for n in names if n not in key]
    return on_conflict_newer(
        statement, table, key, columns=columns, update=update, guarded=guarded, version=version
    )


def on_conflict_newer(
    statement: Insert,
    table: Table,
    key: Sequence[str],
    *,
    columns: Sequence[str] | None = None,
    update: Update | None = None,
    guarded: bool = True,
    version: RowVersion = ROW_VERSION,
) -> Insert:
    """Add the versioned ON CONFLICT (key) DO UPDATE ... WHERE clause to an INSERT into `table`."""
    excluded = statement.excluded
    names = columns if columns is not None else [c.name for c in table.columns if c.name not in key]
    skip = {version.partition, version.offset}
    assignments: dict[str, Any] = {name: excluded[name] for name in names if name not in skip}
    if update is not None:
        assignments.update(update(excluded))
    assignments[version.partition] = excluded[version.partition]
    assignments[version.offset] = excluded[version.offset]
    where = (
        version.newer_than_row(table, excluded[version.partition], excluded[version.offset])
        if guarded
        else None
    )
    return statement.on_conflict_do_update(index_elements=list(key), set_=assignments, where=where)
