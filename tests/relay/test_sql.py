"""The relay's SQL builders and progress encoding: pure logic, no database."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from outbox.envelope import StoredEvent, encode, to_kafka
from relay import sql
from relay.progress import from_ranges, pack_ids, packed_size_bound, unpack_ids


def test_one_shard_reads_without_a_shard_filter() -> None:
    query, params = sql.fetch_batch(0, 1, 500)
    assert "hashtextextended" not in query
    assert "ORDER BY e.id LIMIT %(limit)s" in query
    assert "published_at IS NULL" in query
    assert "FROM outbox_quarantine q" in query
    assert params == {"limit": 500}
    assert "outbox_quarantine" not in sql.fetch_batch(0, 1, 500, holds=False)[0]


def test_shards_split_by_the_aggregate_hash_publish_locks_on() -> None:
    query, params = sql.fetch_batch(2, 8, 100)
    assert "abs(hashtextextended(e.aggregate_type || chr(31) || e.aggregate_id, 0) %% %(shards)s)" in query
    assert params == {"shards": 8, "shard": 2, "limit": 100}


def test_finish_deletes_or_marks() -> None:
    assert sql.finish([1, 2], keep=False) == (
        "DELETE FROM outbox_events WHERE id = ANY(%(ids)s::bigint[])",
        {"ids": "{1,2}"},
    )
    query, params = sql.finish([3], keep=True)
    assert query.startswith("UPDATE outbox_events SET published_at = now()")
    assert params == {"ids": "{3}"}


def test_replay_and_its_age_check_share_one_selection() -> None:
    selection = sql.replay_selection(aggregate_type="order", ce_ids=["00000000-0000-0000-0000-000000000001"])
    where, params = selection
    assert where == (
        "published_at IS NOT NULL AND aggregate_type = %(aggregate_type)s AND ce_id = ANY(%(ce_ids)s::uuid[])"
    )
    assert sql.replay(selection) == (
        f"UPDATE outbox_events SET published_at = NULL WHERE {where} RETURNING id",
        params,
    )
    query, age_params = sql.replay_ages(selection, timedelta(days=6))
    assert query.endswith(f"FROM outbox_events WHERE {where}")
    assert "created_at < now() - %(max_age)s" in query
    assert age_params == {**params, "max_age": timedelta(days=6)}


def test_requeue_restores_the_original_ids() -> None:
    query, params = sql.requeue(["0190-..."])
    assert "OVERRIDING SYSTEM VALUE" in query
    assert params == {"ce_ids": ["0190-..."]}


@given(st.sets(st.integers(min_value=1, max_value=2**62), max_size=300))
def test_progress_ids_round_trip(ids: set[int]) -> None:
    assert unpack_ids(pack_ids(ids)) == sorted(ids)
    assert len(pack_ids(ids)) <= packed_size_bound(len(ids))


def test_progress_records_of_older_releases_list_ranges() -> None:
    assert from_ranges([[1, 3], [5, 5], [9, 9]]) == [1, 2, 3, 5, 9]


def test_a_batch_row_is_id_then_the_stored_event_fields_in_order() -> None:
    """OutboxStore.fetch encodes a row with encode(*row[1:]): the columns must be StoredEvent's
    fields, in its order, and the positional encoding must equal to_kafka()."""
    assert list(sql.EVENT_COLUMNS) == [f.name for f in fields(StoredEvent)]
    query, _ = sql.fetch_batch(0, 1, 10, holds=False)
    selected = query.split(" FROM ")[0].removeprefix("SELECT ").split(", ")
    assert selected == ["e.id"] + [f"e.{c}::text" if c == "ce_id" else f"e.{c}" for c in sql.EVENT_COLUMNS]
    for headers, traceparent in [({"b": "2", "a": "ü"}, "00-ab-cd-01"), ({}, None), (None, None)]:
        row = ("0192-id", "t.x", "src", "2026-11-26T12:00:00.000001Z", "agg", "a-1", "topic", "ct", b"{}")
        event = StoredEvent(*row, headers=headers or {}, traceparent=traceparent)
        assert encode(*row, headers, traceparent) == to_kafka(event)
