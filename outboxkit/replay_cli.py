"""`outbox replay`: publish retained outbox events again (consumers dedupe by ce_id, so it is safe)."""

from __future__ import annotations

import time
from datetime import datetime

import click
import psycopg

from outbox.config import OutboxSettings, Retention
from relay import sql


@click.command()
@click.option("--since", type=click.DateTime(), help="Events created at or after this time (UTC).")
@click.option("--until", type=click.DateTime(), help="Events created before this time (UTC).")
@click.option("--aggregate", help="TYPE or TYPE:ID of the aggregate whose events to replay.")
@click.option("--event", "events", multiple=True, help="A ce_id to replay (repeatable).")
@click.option("--all", "everything", is_flag=True, help="Every retained event (no other filter needed).")
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Show progress until the relay has published them again.",
)
@click.option("--timeout", type=float, default=600, show_default=True, help="Seconds to wait at most.")
@click.pass_obj
def replay(
    flags: dict[str, str],
    *,
    since: datetime | None,
    until: datetime | None,
    aggregate: str | None,
    events: tuple[str, ...],
    everything: bool,
    wait: bool,
    timeout: float,
) -> None:
    """Re-publish retained outbox events selected by time range, aggregate or event ids.

    Only events still in the outbox can be replayed: run the relay with OUTBOX_RETENTION=keep
    (events stay OUTBOX_RETENTION_DAYS). The running relay publishes them again in their original
    order with their original ce_id, so consumers that dedupe (projectors do) change nothing.
    """
    if not (since or until or aggregate or events or everything):
        raise click.UsageError("choose what to replay: --since/--until, --aggregate, --event, or --all")
    settings = OutboxSettings.load(**(flags or {}))
    agg_type, _, agg_id = (aggregate or "").partition(":")
    statement = sql.replay(
        since=since.isoformat() + "+00:00" if since else None,
        until=until.isoformat() + "+00:00" if until else None,
        aggregate_type=agg_type or None,
        aggregate_id=agg_id or None,
        ce_ids=events,
    )
    with psycopg.connect(settings.database_url) as conn:
        ids = [row[0] for row in conn.execute(*statement).fetchall()]
    if not ids:
        hint = (
            ""
            if settings.retention is Retention.KEEP
            else " (published events are deleted unless OUTBOX_RETENTION=keep)"
        )
        click.echo(f"no retained event matches{hint}")
        return
    click.echo(f"{len(ids)} event(s) queued for the relay to publish again")
    if not wait:
        return
    deadline = time.monotonic() + timeout
    with (
        psycopg.connect(settings.database_url, autocommit=True) as conn,
        click.progressbar(length=len(ids), label="republished") as bar,
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
            bar.update(now_done - done)
            done = now_done
            time.sleep(0.2)
