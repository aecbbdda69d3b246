"""`outbox replay`: retained events are published again, same envelope and ce_id, in order."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import orjson
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy import Connection, Engine

from outboxkit.cli import main
from projectors import Projector, ProjectorConfig, ReceivedEvent, version_columns, version_of
from projectors.tracking import OffsetStore
from projectors.versioning import versioned_upsert
from tests.projectors.conftest import running, stored_total, wait_until
from tests.relay.conftest import RelayProcess
from tests.relay.events import by_key, engine_for, outbox_for, write_numbered
from tests.services import consume_all

KEEP = {"OUTBOX_RETENTION": "keep"}

_read_model = sa.MetaData()
latest = sa.Table(
    "replay_latest_seq",
    _read_model,
    sa.Column("agg", sa.Text, primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    *version_columns(),
)


def test_replay_republishes_one_aggregate_with_the_same_ids(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    topic = new_topic("replay")
    write_numbered(engine_for(clean_outbox), outbox_for(topic), ["a", "b"], 5)
    relay = relay_factory(env_extra=KEEP)
    first = consume_all(bootstrap_servers, topic, 10, timeout=20)
    assert by_key(first) == {"a": list(range(5)), "b": list(range(5))}

    env = {"OUTBOX_DATABASE_URL": clean_outbox, **KEEP}
    result = CliRunner().invoke(main, ["replay", "--aggregate", "test:a", "--timeout", "30"], env=env)
    assert result.exit_code == 0, result.output
    assert "5 event(s) queued" in result.output

    records = consume_all(bootstrap_servers, topic, 15, timeout=20)
    assert by_key(records) == {"a": list(range(5)) * 2, "b": list(range(5))}
    ids = [dict(m.headers() or [])["ce_id"] for m in records if m.key() == b"a"]
    assert ids[:5] == ids[5:], "a replay carries the original ce_ids (consumers dedupe on them)"
    assert relay.terminate() == 0


def test_replay_needs_a_selection_and_says_when_nothing_is_retained(clean_outbox: str) -> None:
    env = {"OUTBOX_DATABASE_URL": clean_outbox}
    refused = CliRunner().invoke(main, ["replay"], env=env)
    assert refused.exit_code != 0 and "choose what to replay" in refused.output
    empty = CliRunner().invoke(main, ["replay", "--all"], env=env)
    assert empty.exit_code == 0
    assert (
        "no retained event matches (published events are deleted unless OUTBOX_RETENTION=keep)"
        in empty.output
    )


def latest_projector(name: str, topic: str) -> Projector:
    """Keeps the latest `seq` of each numbered aggregate, versioned by (partition, offset)."""
    projector = Projector(name, [topic], metadata=_read_model)
    upsert = versioned_upsert(latest, ["agg"])

    @projector.handles("test.numbered")
    def numbered(event: ReceivedEvent, conn: Connection) -> None:
        conn.execute(upsert, {"agg": event.subject, "seq": event.payload["seq"], **version_of(event)})

    return projector


def latest_seqs(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {agg: seq for agg, seq in conn.execute(sa.select(latest.c.agg, latest.c.seq))}


def test_replay_older_than_the_dedupe_memory_is_refused_and_the_read_model_stays(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
    unique: Callable[[str], str],
) -> None:
    topic = new_topic("replay-old")
    engine = engine_for(clean_outbox)
    with engine.begin() as conn:
        _read_model.drop_all(conn)
        _read_model.create_all(conn)
    write_numbered(engine, outbox_for(topic), ["a"], 3)
    relay = relay_factory(env_extra=KEEP)
    projector = latest_projector(unique("latest"), topic)
    with running(projector, engine, bootstrap_servers):
        wait_until(lambda: latest_seqs(engine) == {"a": 2}, what="a's three events projected")

        # Eight days pass: the outbox keeps the events (retention=keep), the projector forgets their
        # ids (dedupe_retention is 7 days), as its periodic prune would.
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE outbox_events SET created_at = created_at - interval '8 days'"))
            conn.execute(
                sa.text("UPDATE projector_applied_events SET applied_at = applied_at - interval '8 days'")
            )
            assert OffsetStore(projector.name).prune(conn, ProjectorConfig().dedupe_retention) == 3
            first = conn.execute(
                sa.text("SELECT ce_id::text FROM outbox_events ORDER BY id LIMIT 1")  # a's seq 0
            ).scalar_one()

        env = {"OUTBOX_DATABASE_URL": clean_outbox, **KEEP}
        result = CliRunner().invoke(main, ["replay", "--event", first, "--timeout", "30"], env=env)

        # A later event of another aggregate: once it is projected, anything replayed before it is too.
        write_numbered(engine, outbox_for(topic), ["b"], 1)
        wait_until(lambda: "b" in latest_seqs(engine), what="b projected")
        assert latest_seqs(engine) == {"a": 2, "b": 0}, "the replay took the read model back in time"
        assert stored_total(engine, projector.name) == 4, "nothing but b was published after a's events"

    assert result.exit_code != 0, result.output
    assert "1 of the 1 selected event(s) were created more than 6 days ago" in result.output
    assert "outbox projector rebuild" in result.output and "raise --max-age" in result.output
    with engine.connect() as conn:
        unpublished = conn.execute(sa.text("SELECT count(*) FROM outbox_events WHERE published_at IS NULL"))
        assert unpublished.scalar_one() == 0, "a refused replay changes nothing"
    assert relay.terminate() == 0


def test_an_older_replay_goes_through_when_max_age_allows_it(clean_outbox: str) -> None:
    engine = engine_for(clean_outbox)
    write_numbered(engine, outbox_for("replay-unused"), ["a"], 2)
    with engine.begin() as conn:  # published eight days ago, as a relay with retention=keep leaves them
        conn.execute(
            sa.text("UPDATE outbox_events SET created_at = now() - interval '8 days', published_at = now()")
        )
    env = {"OUTBOX_DATABASE_URL": clean_outbox, **KEEP}
    refused = CliRunner().invoke(main, ["replay", "--all", "--no-wait"], env=env)
    assert refused.exit_code == 1
    assert "2 of the 2 selected event(s) were created more than 6 days ago" in refused.output

    allowed = CliRunner().invoke(main, ["replay", "--all", "--no-wait", "--max-age", "9"], env=env)
    assert allowed.exit_code == 0, allowed.output
    assert "2 event(s) queued" in allowed.output


def retained(engine: Engine, created_at: str) -> list[str]:
    """Four events of aggregates a and b, published, created at `created_at`; their ce_ids."""
    write_numbered(engine, outbox_for("replay-unused"), ["a", "b"], 2)
    with engine.begin() as conn:  # as a relay with retention=keep leaves them
        conn.execute(
            sa.text("UPDATE outbox_events SET created_at = :at, published_at = now()"), {"at": created_at}
        )
        return list(conn.execute(sa.text("SELECT ce_id::text FROM outbox_events ORDER BY id")).scalars())


def unpublished(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM outbox_events WHERE published_at IS NULL")
            ).scalar_one()
        )


def test_since_and_until_take_z_and_offsets_and_a_dry_run_queues_nothing(clean_outbox: str) -> None:
    """Issue 13 item 11: `--since 2026-12-01T22:21:20Z` was refused by click.DateTime."""
    engine = engine_for(clean_outbox)
    ce_ids = retained(engine, (datetime.now(UTC) - timedelta(hours=1)).isoformat())
    hour_ago = datetime.now(UTC) - timedelta(hours=2)
    env = {"OUTBOX_DATABASE_URL": clean_outbox, **KEEP}
    for since in (
        hour_ago.strftime("%Y-%m-%dT%H:%M:%SZ"),
        hour_ago.astimezone(timezone(timedelta(hours=2))).isoformat(),
        hour_ago.strftime("%Y-%m-%dT%H:%M:%S"),  # no zone: UTC
    ):
        result = CliRunner().invoke(main, ["replay", "--since", since, "--dry-run"], env=env)
        assert result.exit_code == 0, result.output
        assert "dry run: 4 event(s) would be queued" in result.output and "test: 4 event(s)" in result.output
    later = (datetime.now(UTC) - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    none = CliRunner().invoke(main, ["replay", "--since", later, "--dry-run"], env=env)
    assert "no retained event matches" in none.output, none.output
    bad = CliRunner().invoke(main, ["replay", "--since", "yesterday", "--dry-run"], env=env)
    assert bad.exit_code == 2 and "is not an ISO 8601 time" in bad.output

    as_json = CliRunner().invoke(main, ["replay", "--aggregate", "test:a", "--dry-run", "--json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    plan = orjson.loads(as_json.stdout)
    assert plan["dry_run"] is True and plan["events"] == 2
    [by_type] = plan["aggregate_types"]
    assert by_type["aggregate_type"] == "test" and by_type["ce_ids"] == [ce_ids[0], ce_ids[2]]
    assert unpublished(engine) == 0, "a dry run queues nothing"
    alone = CliRunner().invoke(main, ["replay", "--all", "--json"], env=env)
    assert alone.exit_code == 2 and "--json prints a --dry-run's answer" in alone.output


def test_without_a_running_relay_a_waiting_replay_is_refused_at_once(clean_outbox: str) -> None:
    """Issue 13 item 11: it used to queue, wait 600 s, then ask "is a relay running?"."""
    engine = engine_for(clean_outbox)
    retained(engine, datetime.now(UTC).isoformat())
    env = {"OUTBOX_DATABASE_URL": clean_outbox, **KEEP}
    started = time.monotonic()
    refused = CliRunner().invoke(main, ["replay", "--all"], env=env)
    assert time.monotonic() - started < 5
    assert refused.exit_code == 1
    assert "no polling relay is running on table public.outbox_events" in refused.output
    assert "nothing was queued" in refused.output and "--no-wait" in refused.output
    assert unpublished(engine) == 0

    queued = CliRunner().invoke(main, ["replay", "--all", "--no-wait"], env=env)
    assert queued.exit_code == 0, queued.output
    assert "4 event(s) queued" in queued.output and "published when one starts" in queued.output
    assert unpublished(engine) == 4
