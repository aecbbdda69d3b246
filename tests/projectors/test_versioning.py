"""The offset-as-version SQL builders, compiled for PostgreSQL without a database; one check that
PostgreSQL agrees."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql

from projectors.versioning import (
    ROW_VERSION,
    RowVersion,
    newer_than_row,
    version_columns,
    versioned_upsert,
    versioned_upsert_many,
)

rows = sa.Table(
    "rows",
    sa.MetaData(),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text),
    *version_columns(),
)


def sql(statement: sa.ClauseElement) -> str:
    return re.sub(r"\s+", " ", str(statement.compile(dialect=postgresql.dialect())))


def test_upsert_updates_only_when_the_incoming_version_is_newer() -> None:
    insert, conflict = sql(versioned_upsert(rows, ["id"])).split(" ON CONFLICT ")
    assert insert.startswith("INSERT INTO rows (id, name, source_partition, source_offset) VALUES (")
    assert conflict == (
        "(id) DO UPDATE SET name = excluded.name, source_partition = excluded.source_partition, "
        "source_offset = excluded.source_offset WHERE (rows.source_partition, rows.source_offset) "
        "< (excluded.source_partition, excluded.source_offset)"
    )


def test_upsert_without_guard_and_with_expressions() -> None:
    statement = versioned_upsert(
        rows, ["id"], columns=[], update=lambda excluded: {"name": rows.c.name + excluded.name}, guarded=False
    )
    assert sql(statement).endswith(
        "ON CONFLICT (id) DO UPDATE SET name = (rows.name || excluded.name), "
        "source_partition = excluded.source_partition, source_offset = excluded.source_offset"
    )


def test_custom_version_columns() -> None:
    table = sa.Table(
        "t", sa.MetaData(), sa.Column("k", sa.Integer, primary_key=True), *RowVersion("p", "o").columns()
    )
    assert sql(versioned_upsert(table, ["k"], version=RowVersion("p", "o"))).endswith(
        "ON CONFLICT (k) DO UPDATE SET p = excluded.p, o = excluded.o "
        "WHERE (t.p, t.o) < (excluded.p, excluded.o)"
    )


def test_guard_for_hand_written_updates() -> None:
    statement = sa.update(rows).where(newer_than_row(rows, 1, 5)).values(name="x")
    assert "WHERE (rows.source_partition, rows.source_offset) < (%(param_1)s" in sql(statement)


def test_postgresql_applies_newer_versions_only(engine: Engine) -> None:
    table = sa.Table("versioning_check", sa.MetaData(), *[c._copy() for c in rows.columns])
    upsert = versioned_upsert(table, ["id"])
    with engine.begin() as conn:
        table.create(conn)
        try:
            for name, partition, offset in [
                ("a", 0, 5),
                ("old", 0, 4),
                ("same", 0, 5),
                ("b", 0, 6),
                ("p1", 1, 0),
            ]:
                conn.execute(
                    upsert, {"id": "x", "name": name, "source_partition": partition, "source_offset": offset}
                )
                if name == "b":
                    assert conn.execute(sa.select(table.c.name)).scalar_one() == "b"
            assert conn.execute(sa.select(table.c.name, table.c.source_offset)).one() == ("p1", 0)
        finally:
            table.drop(conn)


def test_newest_per_key_keeps_the_highest_version() -> None:
    rows_in = [
        {"id": "a", "name": "1", "source_partition": 0, "source_offset": 3},
        {"id": "b", "name": "2", "source_partition": 1, "source_offset": 1},
        {"id": "a", "name": "3", "source_partition": 0, "source_offset": 9},
        {"id": "a", "name": "4", "source_partition": 0, "source_offset": 5},
    ]
    assert [r["name"] for r in ROW_VERSION.newest_per_key(rows_in, ["id"])] == ["3", "2"]


def test_upsert_many_is_one_statement_of_arrays(engine: Engine) -> None:
    table = sa.Table("versioning_many", sa.MetaData(), *[c._copy() for c in rows.columns])
    batch = [
        {"id": "a", "name": "a1", "source_partition": 0, "source_offset": 1},
        {"id": "b", "name": "b1", "source_partition": 0, "source_offset": 2},
        {"id": "a", "name": "a2", "source_partition": 0, "source_offset": 3},
    ]
    statement = versioned_upsert_many(table, ["id"], batch)
    assert "SELECT unnest(" in sql(statement)
    with engine.begin() as conn:
        table.create(conn)
        try:
            conn.execute(statement)
            conn.execute(versioned_upsert_many(table, ["id"], [{**batch[0], "name": "stale"}]))
            assert sorted(conn.execute(sa.select(table.c.id, table.c.name))) == [("a", "a2"), ("b", "b1")]
        finally:
            table.drop(conn)
