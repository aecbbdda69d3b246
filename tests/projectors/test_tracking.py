"""The offset store's SQL against PostgreSQL: claims, remembered ids, pruning, take-over."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import Engine, text

from projectors.tracking import OffsetStore


def test_claim_load_save_and_take_over(engine: Engine) -> None:
    live, other = OffsetStore(f"live-{uuid.uuid4().hex[:6]}"), OffsetStore(f"other-{uuid.uuid4().hex[:6]}")
    with engine.begin() as conn:
        assert live.claim(conn, [("t", 0), ("t", 1)], {"t": 2}) == {("t", 0): 0, ("t", 1): 0}
        live.save(conn, {("t", 1): 42})
        assert live.claim(conn, [("t", 1)], {"t": 2}) == {("t", 1): 42}  # a claim never resets
        assert live.partition_counts(conn) == {"t": {2}}
        other.claim(conn, [("t", 0)], {"t": 2})
        other.save(conn, {("t", 0): 7})
        live.take_over(conn, other)
        assert live.all(conn) == {("t", 0): 7}
        assert other.all(conn) == {}


def test_remember_returns_only_new_ids_and_prune_forgets_old_ones(engine: Engine) -> None:
    store = OffsetStore(f"ids-{uuid.uuid4().hex[:6]}")
    old, new = uuid.uuid4(), uuid.uuid4()
    with engine.begin() as conn:
        assert store.remember(conn, [old, old]) == {old}
        conn.execute(
            text(
                "UPDATE projector_applied_events SET applied_at = now() - interval '8 days'"
                " WHERE projector = :p"
            ),
            {"p": store.projector},
        )
        assert store.remember(conn, [old, new]) == {new}
        assert store.prune(conn, timedelta(days=7)) == 1
        assert store.remember(conn, [old, new]) == {old}
