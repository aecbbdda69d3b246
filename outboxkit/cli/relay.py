"""`outbox relay run|status|quarantine`: operate the polling relay."""

from __future__ import annotations

import gc
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import click
import orjson

from outbox.config import OutboxSettings
from outbox.errors import OutboxError
from outboxkit.cli.database import connect
from outboxkit.cli.progress import Progress
from outboxkit.cli.settings import JSON_OUTPUT, LOG_LEVEL, CommandGroup, CommandSettings
from outboxkit.ops import logs
from outboxkit.ops.endpoints import serve
from relay import quarantine as quarantine_table
from relay.errors import RelayError
from relay.metrics import RelayMetrics
from relay.polling import PollingRelay
from relay.settings import RelayMode, RelaySettings
from relay.status import RelayStatusSource

log = logging.getLogger("outbox.relay")


GC_THRESHOLD = (50_000, 20, 20)
"""The daemon's garbage-collector thresholds (Python's default: 700, 10, 10); see tune_gc()."""


def tune_gc() -> None:
    """Tune the garbage collector of the relay daemon's process (the library leaves it alone: it
    is process-wide, and a service that embeds PollingRelay keeps its own).

    A batch allocates tens of thousands of short-lived, acyclic objects (rows, records, delivery
    callbacks), freed by reference counting; with the default thresholds the cyclic collector
    runs over them again and again, and its full collections stall a batch. Long-lived objects
    (modules, settings, clients) are frozen out of it first. Measured on 300k-event drains
    (bench/README.md, polling relay, run 6): 54 full collections of up to 275 ms and 7-11 s in
    the collector per drain without the tuning; none and 1.2-1.6 s with it; drains ~1.4x faster.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def _settings(ctx: click.Context, **relay_flags: Any) -> tuple[OutboxSettings, RelaySettings]:
    settings = CommandSettings(ctx)
    settings.database_url(changes=False)
    return settings.outbox, settings.section("relay", RelaySettings, **relay_flags)


@click.group(cls=CommandGroup)
def relay() -> None:
    """The polling relay: moves committed outbox events to Kafka in commit order per aggregate."""


@relay.command()
@click.option("--mode", type=click.Choice([m.value for m in RelayMode]), help="idempotent | transactional")
@click.option("--group", help="Relay group (relays of one group share the shards).")
@click.option("--shards", type=int, help="Key-hash shards of the outbox.")
@click.option("--batch-size", type=int, help="Events per batch.")
@click.option("--metrics-port", type=int, help="Port of /metrics, /healthz and /status.json (0: off).")
@click.option("--stale-after", type=float, help="Seconds without a turn before /healthz says 503.")
@LOG_LEVEL
@click.pass_context
def run(ctx: click.Context, /, log_level: str, **flags: Any) -> None:
    """Run the relay until SIGTERM/SIGINT (the batch in flight is finished; exit code 0).

    Logs are JSON lines on stderr; a relay that cannot go on logs why and exits with code 1.
    """
    loaded = CommandSettings(ctx)
    loaded.database_url(changes=True, say=False)
    outbox_settings, kafka = loaded.outbox, loaded.kafka
    relay_settings = loaded.section("relay", RelaySettings, **flags)
    logs.configure(log_level)
    loaded.log_database(log)
    metrics = RelayMetrics(stale_after=max(relay_settings.stale_after, 3 * relay_settings.poll_interval))
    daemon = PollingRelay(outbox_settings, relay_settings, metrics, kafka=kafka)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: daemon.stop())
    server = None
    try:
        if relay_settings.metrics_port:
            status = RelayStatusSource(
                outbox_settings.database_url, relay_settings.group, relay_settings.shards
            )
            server = serve(
                relay_settings.metrics_host,
                relay_settings.metrics_port,
                registry=metrics.registry,
                health=metrics.heartbeat,
                status=status,
            )
        tune_gc()
        daemon.run()
    except OutboxError as err:
        if not isinstance(err, RelayError):  # the relay logged those itself
            log.error("relay cannot go on: %s", err)
        ctx.exit(1)
    finally:
        if server is not None:
            server.close()


@relay.command()
@JSON_OUTPUT
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Print the backlog, the age of the oldest unpublished event, quarantine and shard owners."""
    outbox_settings, relay_settings = _settings(ctx)
    source = RelayStatusSource(outbox_settings.database_url, relay_settings.group, relay_settings.shards)
    now = source.read()
    if as_json:
        click.echo(orjson.dumps(now.to_json()).decode())
        return
    click.echo(f"backlog:            {now.backlog} unpublished events")
    click.echo(
        f"lag:                {now.oldest_unpublished_seconds:.3f} s (age of the oldest unpublished event)"
    )
    click.echo(f"quarantined:        {now.quarantined} events")
    owned = ", ".join(f"{o.shard}: {o.instance or '?'} (pid {o.pid})" for o in now.owners) or "none"
    click.echo(f"shards ({now.shards}, group {now.group}): {owned}")
    # The shards are the table's: whichever group publishes it holds them. Name it, so a relay
    # started with another group (refused, waiting) is explained here too.
    live = "; ".join(
        f"{g.name} (instances {', '.join(i or '?' for i in g.instances)}; pids {', '.join(map(str, g.pids))})"
        for g in now.groups
    )
    click.echo(f"relay groups:       {live or 'none running'} on {now.table}")
    if now.other_groups:
        click.echo(
            f"warning: relays of group {now.group} take no shard while group {now.other_groups[0]} publishes"
            " this outbox (one group per outbox table; see `outbox relay run`'s log for what to do)"
        )


@relay.group()
def quarantine() -> None:
    """Inspect, requeue or discard events Kafka refused for good."""


@quarantine.command("list")
@JSON_OUTPUT
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List quarantined events with their reasons (--json: `events`, each with its fields)."""
    with connect(CommandSettings(ctx).database_url(changes=False)) as conn:
        events = quarantine_table.list_quarantined(conn)
    if as_json:
        click.echo(orjson.dumps({"events": [e.to_json() for e in events]}).decode())
        return
    for e in events:
        click.echo(
            f"{e.ce_id}  {e.aggregate_type}/{e.aggregate_id}  {e.ce_type} -> {e.topic}"
            f"  at {e.quarantined_at:%Y-%m-%d %H:%M:%S}\n    {e.reason}"
        )
    click.echo(f"{len(events)} quarantined")


CE_IDS = click.argument("ce_ids", nargs=-1, required=True, type=click.UUID)
"""The ce_ids of quarantined events (`outbox relay quarantine list` shows them)."""


def _apply(
    ctx: click.Context, action: Callable[[Any, Sequence[str]], list[str]], ce_ids: Sequence[UUID], verb: str
) -> None:
    with connect(CommandSettings(ctx).database_url(changes=True)) as conn:
        done = action(conn, [str(ce_id) for ce_id in ce_ids])
    click.echo(f"{verb} {len(done)} event(s): {' '.join(done)}" if done else f"nothing {verb}")


REQUEUE_CHUNK = 500
"""Events requeued per transaction by `requeue --all|--topic` (the relay sees each chunk at once)."""


@quarantine.command()
@click.argument("ce_ids", nargs=-1, type=click.UUID)
@click.option("--all", "everything", is_flag=True, help="Requeue every quarantined event.")
@click.option("--topic", help="Requeue every quarantined event of this topic.")
@click.pass_context
def requeue(ctx: click.Context, ce_ids: tuple[UUID, ...], everything: bool, topic: str | None) -> None:
    """Put events back into the outbox in their old place (after fixing the cause).

    CE_IDS as `list` shows them, or --all / --topic NAME: those are moved in chunks of 500, one
    transaction each, with progress on stderr.
    """
    if bool(ce_ids) + everything + (topic is not None) != 1:
        raise click.UsageError("give CE_IDS, or --all, or --topic NAME (one of them)")
    if ce_ids:
        _apply(ctx, quarantine_table.requeue, ce_ids, "requeued")
        return
    url = CommandSettings(ctx).database_url(changes=True)
    with connect(url, autocommit=True) as conn:
        total = len(quarantine_table.list_quarantined(conn, topic=topic))
        moved = 0
        with Progress("requeued", total) as progress:
            while chunk := quarantine_table.list_quarantined(conn, REQUEUE_CHUNK, topic):
                done = quarantine_table.requeue(conn, [e.ce_id for e in chunk])
                if not done:  # another operator discarded or requeued them meanwhile
                    break
                moved += len(done)
                progress.update(moved, max(total, moved))
    click.echo(f"requeued {moved} event(s)" + (f" of topic {topic}" if topic else ""))


@quarantine.command()
@CE_IDS
@click.pass_context
def discard(ctx: click.Context, ce_ids: tuple[UUID, ...]) -> None:
    """Drop events for good; events held behind them flow again."""
    _apply(ctx, quarantine_table.discard, ce_ids, "discarded")
