"""`outbox replay`: publish retained outbox events again (consumers dedupe by ce_id, so it is safe
for events young enough that the consumers still remember their ids; older ones are refused)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import click
import orjson
import psycopg

from outbox.config import Retention
from outboxkit.cli.database import connect
from outboxkit.cli.progress import Progress
from outboxkit.cli.replay_plan import ReplayPlan
from outboxkit.cli.settings import JSON_OUTPUT, CommandSettings
from projectors.config import ProjectorConfig
from relay import sql
from relay.identity import OutboxTable
from relay.leases import live_relays

DEDUPE_RETENTION = ProjectorConfig().dedupe_retention
DELIVERY_MARGIN = timedelta(days=1)
"""Time for the relay and a lagging projector to deliver a replay before the original ids are pruned."""
MAX_AGE_DAYS = (DEDUPE_RETENTION - DELIVERY_MARGIN) / timedelta(days=1)


if TYPE_CHECKING:  # generic in click's recent stubs, not at run time in click 8.1
    _TimeType = click.ParamType[datetime]
else:
    _TimeType = click.ParamType


class Timestamp(_TimeType):
    """An ISO 8601 time: `2026-12-01`, `2026-12-01T22:21:20`, with `Z` or an offset (`+02:00`);
    a time without either is UTC."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            moment = value
        else:
            try:
                moment = datetime.fromisoformat(str(value).strip())
            except ValueError:
                self.fail(
                    f"{value!r} is not an ISO 8601 time (e.g. 2026-12-01T22:21:20Z, 2026-12-01T23:21:20+01:00"
                    " or 2026-12-01; without Z or an offset it is UTC)",
                    param,
                    ctx,
                )
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


TIME = Timestamp()


@click.command()
@click.option(
    "--since", type=TIME, help="Events created at or after this time (ISO 8601; UTC unless Z/offset)."
)
@click.option("--until", type=TIME, help="Events created before this time (ISO 8601; UTC unless Z/offset).")
@click.option("--aggregate", help="TYPE or TYPE:ID of the aggregate whose events to replay.")
@click.option("--event", "events", type=click.UUID, multiple=True, help="A ce_id to replay (repeatable).")
@click.option("--all", "everything", is_flag=True, help="Every retained event (no other filter needed).")
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Show progress until the relay has published them again.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Say what would be replayed (count, times, aggregate types); queue nothing.",
)
@JSON_OUTPUT
@click.option("--timeout", type=float, default=600, show_default=True, help="Seconds to wait at most.")
@click.option(
    "--max-age",
    type=click.FloatRange(min=0),
    default=MAX_AGE_DAYS,
    show_default=True,
    help="Refuse if a selected event was created more than this many days ago (projectors dedupe "
    "by remembering ce_ids for their dedupe_retention, 7 days by default, less a day to deliver).",
)
@click.pass_context
def replay(
    ctx: click.Context,
    *,
    since: datetime | None,
    until: datetime | None,
    aggregate: str | None,
    events: tuple[UUID, ...],
    everything: bool,
    wait: bool,
    dry_run: bool,
    as_json: bool,
    timeout: float,
    max_age: float,
) -> None:
    """Re-publish retained outbox events selected by time range, aggregate or event ids.

    Only events still in the outbox can be replayed: run the relay with OUTBOX_RETENTION=keep
    (events stay OUTBOX_RETENTION_DAYS). The running relay publishes them again in their original
    order with their original ce_id, so consumers that dedupe (projectors do) change nothing.

    With --wait (the default) a polling relay must be running on the outbox: without one the replay
    is refused at once and nothing is queued (--no-wait queues them for the next relay that starts).

    A replayed event arrives at a new, higher offset. Projectors skip it by its ce_id while they
    remember it (dedupe_retention); after that they would apply it and put read-model rows back to
    an older state, so events older than --max-age are refused (rebuild the read model instead).
    """
    if not (since or until or aggregate or events or everything):
        raise click.UsageError("choose what to replay: --since/--until, --aggregate, --event, or --all")
    if as_json and not dry_run:
        raise click.UsageError("--json prints a --dry-run's answer: add --dry-run")
    loaded = CommandSettings(ctx)
    loaded.database_url(changes=not dry_run)
    settings = loaded.outbox
    agg_type, _, agg_id = (aggregate or "").partition(":")
    selection = sql.replay_selection(
        since=since.isoformat() if since else None,
        until=until.isoformat() if until else None,
        aggregate_type=agg_type or None,
        aggregate_id=agg_id or None,
        ce_ids=[str(event) for event in events],
    )
    with connect(settings.database_url) as conn:  # one transaction: a refusal changes nothing
        refuse_too_old(conn, selection, timedelta(days=max_age))
        if dry_run:
            plan = ReplayPlan.read(conn, selection)
            click.echo(orjson.dumps(plan.to_json()).decode() if as_json else plan.describe())
            return
        ids = [row[0] for row in conn.execute(*sql.replay(selection)).fetchall()]
        relays = live_relays(conn)
        if ids and wait and not relays:  # raised inside the transaction: it is rolled back
            raise click.ClickException(
                f"no polling relay is running on {OutboxTable.of(conn).describe()} (none holds a shard):"
                f" nothing was queued of the {len(ids)} selected event(s). Start one (`outbox relay run`)"
                " and replay again, or pass --no-wait to queue them for the next relay that starts."
            )
    if not ids:
        hint = (
            ""
            if settings.retention is Retention.KEEP
            else " (published events are deleted unless OUTBOX_RETENTION=keep)"
        )
        click.echo(f"no retained event matches{hint}")
        return
    click.echo(f"{len(ids)} event(s) queued for the relay to publish again")
    if not relays:
        click.echo("no polling relay is running on this outbox: they are published when one starts")
    if not wait:
        return
    deadline = time.monotonic() + timeout
    with (
        connect(settings.database_url, autocommit=True) as conn,
        Progress("republished", len(ids)) as bar,
    ):
        done = 0
        while done < len(ids):
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"only {done} of {len(ids)} republished after {timeout:.0f}s: "
                    "is a relay running (`outbox relay status`)?"
                )
            row = conn.execute(*sql.still_unpublished(ids)).fetchone()
            now_done = len(ids) - int(row[0] if row else 0)
            bar.update(now_done)
            done = now_done
            time.sleep(0.2)


def refuse_too_old(
    conn: psycopg.Connection[tuple[object, ...]], selection: tuple[str, dict[str, object]], max_age: timedelta
) -> None:
    """Refuse a replay of events the projectors may have forgotten (their ids pruned from the dedupe
    memory): applied again at their new offsets, they would win over newer events' row versions."""
    row = conn.execute(*sql.replay_ages(selection, max_age)).fetchone()
    selected, too_old, oldest = row if row is not None else (0, 0, None)
    if not too_old:
        return
    raise click.ClickException(
        f"{too_old} of the {selected} selected event(s) were created more than"
        f" {max_age / timedelta(days=1):g} days ago (the oldest at {oldest}): nothing was queued."
        f" Projectors remember applied ce_ids only for their dedupe_retention ({DEDUPE_RETENTION.days}"
        " days by default): they would take an older event for a new one, apply it at its new offset,"
        " and put read-model rows back to an older state. To rebuild a read model from Kafka run"
        " `outbox projector rebuild NAME`; to replay recent events only, narrow the selection"
        " (--since). If no consumer of these topics keeps state that an older event would overwrite,"
        " or their dedupe memory is longer, raise --max-age (days)."
    )
