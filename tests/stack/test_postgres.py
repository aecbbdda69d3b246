"""The PostgreSQL of stack/ is ready for Debezium: logical WAL and replication slots."""

from __future__ import annotations

import uuid

import psycopg


def test_wal_level_is_logical(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        slots = conn.execute("SHOW max_replication_slots").fetchone()
        assert slots is not None and int(slots[0]) >= 4


def test_logical_replication_slot_can_be_created_and_dropped(database_url: str) -> None:
    slot = f"test_slot_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        try:
            row = conn.execute(
                "SELECT plugin, slot_type FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone()
            assert row == ("pgoutput", "logical")
        finally:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        gone = conn.execute(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()
        assert gone == (0,)
