"""`outbox relay run|status|quarantine`: operate the polling relay."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import click

from outbox.errors import OutboxError
from outboxkit import logs
from outboxkit.cli.database import connect
from relay import sql
from relay.identity import SourceIdentity, default_group
from relay.leases import ShardLeases
from relay.metrics import RelayMetrics
from relay.polling import PollingRelay
from relay.settings import RelayMode, load_settings

CONFIG = click.option(
    "--config",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="TOML file: outbox settings at the top, relay settings under [relay].",
)


def _settings(ctx: click.Context, config: Path | None, **relay_flags: Any) -> Any:
    try:
        return load_settings(config, **(ctx.obj or {}), **{f"relay_{k}": v for k, v in relay_flags.items()})
    except OutboxError as err:
        raise click.ClickException(str(err)) from err


@click.group()
def relay() -> None:
    """The polling relay: moves committed outbox events to Kafka in commit order per aggregate."""


@relay.command()
@CONFIG
@click.option("--mode", type=click.Choice([m.value for m in RelayMode]), help="idempotent | transactional")
@click.option("--group", help="Relay group (relays of one group share the shards).")
@click.option("--shards", type=int, help="Key-hash shards of the outbox.")
@click.option("--batch-size", type=int, help="Events per batch.")
@click.option("--metrics-port", type=int, help="Port of /metrics and /healthz (0: off).")
@click.option("--log-level", default="INFO", show_default=True)
@click.pass_context
def run(ctx: click.Context, /, config: Path | None, log_level: str, **flags: Any) -> None:
    """Run the relay until SIGTERM/SIGINT (the batch in flight is finished; exit code 0)."""
    outbox_settings, relay_settings = _settings(ctx, config, **flags)
    logs.configure(log_level)
    metrics = RelayMetrics()
    try:
        daemon = PollingRelay(outbox_settings, relay_settings, metrics)
    except OutboxError as err:
        raise click.ClickException(str(err)) from err
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: daemon.stop())
    server = None
    if relay_settings.metrics_port:
        server = metrics.serve(
            relay_settings.metrics_host,
            relay_settings.metrics_port,
            stale_after=max(30.0, 3 * relay_settings.poll_interval),
        )
    try:
        daemon.run()
    except OutboxError as err:  # the relay cannot go on (logged); say why, exit 1
        raise click.ClickException(str(err)) from err
    finally:
        if server is not None:
            server.shutdown()


@relay.command()
@CONFIG
@click.pass_context
def status(ctx: click.Context, config: Path | None) -> None:
    """Print the backlog, the age of the oldest unpublished event, quarantine and shard owners."""
    outbox_settings, relay_settings = _settings(ctx, config)
    with connect(outbox_settings.database_url, autocommit=True) as conn:
        row = conn.execute(*sql.backlog()).fetchone()
        assert row is not None
        backlog, oldest, quarantined = int(row[0]), float(row[1] or 0), int(row[2])
        group = relay_settings.group or default_group(SourceIdentity.of(conn))
        leases = ShardLeases(conn, group, relay_settings.shards)
        holders, groups, others = leases.holders(), leases.groups(), leases.other_groups()
    click.echo(f"backlog:            {backlog} unpublished events")
    click.echo(f"lag:                {oldest:.3f} s (age of the oldest unpublished event)")
    click.echo(f"quarantined:        {quarantined} events")
    owned = ", ".join(f"{s}:pid {p}" for s, p in sorted(holders.items())) or "none"
    click.echo(f"shards ({relay_settings.shards}, group {group}): {owned}")
    # The shards are the table's: whichever group publishes it holds them. Name it, so a relay
    # started with another group (refused, waiting) is explained here too.
    live = "; ".join(f"{name} (pids {', '.join(map(str, pids))})" for name, pids in groups.items())
    click.echo(f"relay groups:       {live or 'none running'} on {leases.table.describe()}")
    if others:
        click.echo(
            f"warning: relays of group {group} take no shard while group {next(iter(others))} publishes"
            " this outbox (one group per outbox table; see `outbox relay run`'s log for what to do)"
        )


@relay.group()
def quarantine() -> None:
    """Inspect, requeue or discard events Kafka refused for good."""


@quarantine.command("list")
@CONFIG
@click.pass_context
def list_(ctx: click.Context, config: Path | None) -> None:
    """List quarantined events with their reasons."""
    outbox_settings, _ = _settings(ctx, config)
    with connect(outbox_settings.database_url) as conn:
        rows = conn.execute(
            f"SELECT ce_id::text, aggregate_type, aggregate_id, ce_type, topic, quarantined_at, reason"
            f" FROM {sql.QUARANTINE} ORDER BY id"
        ).fetchall()
    for ce_id, agg_type, agg_id, ce_type, topic, at, reason in rows:
        click.echo(
            f"{ce_id}  {agg_type}/{agg_id}  {ce_type} -> {topic}  at {at:%Y-%m-%d %H:%M:%S}\n    {reason}"
        )
    click.echo(f"{len(rows)} quarantined")


def _apply(ctx: click.Context, config: Path | None, statement: Any, verb: str) -> None:
    outbox_settings, _ = _settings(ctx, config)
    with connect(outbox_settings.database_url) as conn:
        done = [r[0] for r in conn.execute(*statement).fetchall()]
    click.echo(f"{verb} {len(done)} event(s): {' '.join(done)}" if done else f"nothing {verb}")


@quarantine.command()
@CONFIG
@click.argument("ce_ids", nargs=-1, required=True)
@click.pass_context
def requeue(ctx: click.Context, config: Path | None, ce_ids: tuple[str, ...]) -> None:
    """Put events back into the outbox in their old place (after fixing the cause)."""
    _apply(ctx, config, sql.requeue(ce_ids), "requeued")


@quarantine.command()
@CONFIG
@click.argument("ce_ids", nargs=-1, required=True)
@click.pass_context
def discard(ctx: click.Context, config: Path | None, ce_ids: tuple[str, ...]) -> None:
    """Drop events for good; events held behind them flow again."""
    _apply(ctx, config, sql.discard(ce_ids), "discarded")
