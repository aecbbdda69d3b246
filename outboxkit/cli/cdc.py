"""`outbox cdc config|register|status|monitor|pause|resume|remove`: the CDC relay (Debezium in Connect)."""

from __future__ import annotations

import json
import signal
import threading
from typing import Any

import click
import orjson

from outbox.config import OutboxSettings
from outboxkit.cli.database import connect
from outboxkit.cli.settings import JSON_OUTPUT, LOG_LEVEL, CommandGroup, CommandSettings
from relay.cdc import CdcSettings, connector_config, refuse_repointing
from relay.connect import ConnectClient
from relay.monitor import CdcMonitor
from relay.slot import SlotMetrics, drop_publication, drop_slot_when_released
from relay.status import CdcStatusSource


def _settings(
    ctx: click.Context, changes: bool | None = None, **cdc_flags: Any
) -> tuple[OutboxSettings, CdcSettings]:
    """`changes`: the command uses the database and changes things (True), only reads (False),
    or does not use it (None); see CommandSettings.database_url."""
    settings = CommandSettings(ctx)
    if changes is not None:
        settings.database_url(changes=changes)
    return settings.outbox, settings.section("cdc", CdcSettings, **cdc_flags)


@click.group(cls=CommandGroup)
@click.option("--connect-url", help="Kafka Connect's REST API [env OUTBOX_CONNECT_URL].")
@click.pass_context
def cdc(ctx: click.Context, connect_url: str | None) -> None:
    """The CDC relay: Debezium's PostgreSQL connector with the Outbox Event Router, in Kafka Connect.

    Settings: OUTBOX_... (database URL, Connect URL) and OUTBOX_CDC_... (connector, slot,
    publication, exactly-once, heartbeats), or the same keys in a --config file (CDC settings in
    its [cdc] table; the relay's file works). Records are byte-identical to the polling relay's.
    """
    if connect_url:
        ctx.ensure_object(dict)["connect_url"] = connect_url


EXACTLY_ONCE = click.option(
    "--exactly-once/--no-exactly-once",
    default=None,
    help="Require exactly-once delivery (the worker must enable it) [env OUTBOX_CDC_EXACTLY_ONCE].",
)


MASK = "********"


@cdc.command()
@EXACTLY_ONCE
@click.option("--show-password", is_flag=True, help="Print the database password of the URL unmasked.")
@click.pass_context
def config(ctx: click.Context, exactly_once: bool | None, show_password: bool) -> None:
    """Print the connector as JSON (the body of Connect's `POST /connectors`).

    A password taken from the database URL is masked unless --show-password; a reference
    (OUTBOX_CDC_DATABASE_PASSWORD=${env:...}) is printed as it is, it holds no secret.
    """
    outbox, settings = _settings(ctx, changes=False, exactly_once=exactly_once)
    connector = connector_config(outbox, settings)
    if settings.database_password is None and not show_password and connector["database.password"]:
        connector["database.password"] = MASK
    click.echo(json.dumps({"name": settings.connector_name, "config": connector}, indent=2))


@cdc.command()
@EXACTLY_ONCE
@click.option("--wait/--no-wait", default=True, show_default=True, help="Until connector and task run.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait.")
@click.option(
    "--replace",
    is_flag=True,
    help="Re-point a connector of this name that streams another database, table or slot.",
)
@click.pass_context
def register(
    ctx: click.Context, exactly_once: bool | None, wait: bool, timeout: float, replace: bool
) -> None:
    """Create the connector, or update its configuration (idempotent).

    A connector of the same name that streams another database, table or slot (another service's)
    is refused unless --replace.
    """
    outbox, settings = _settings(ctx, changes=True, exactly_once=exactly_once)
    wanted = connector_config(outbox, settings)
    with ConnectClient(outbox.connect_url) as client:
        if not replace:
            refuse_repointing(settings.connector_name, client.config(settings.connector_name), wanted)
        client.put_config(settings.connector_name, wanted)
        if wait:
            client.wait(settings.connector_name, timeout=timeout)
    click.echo(f"connector {settings.connector_name} {'running' if wait else 'registered'}")


@cdc.command()
@click.option("--metrics", is_flag=True, help="Print Prometheus exposition text instead.")
@JSON_OUTPUT
@click.pass_context
def status(ctx: click.Context, metrics: bool, as_json: bool) -> None:
    """Connector and task state, and the WAL the replication slot retains."""
    outbox, settings = _settings(ctx, changes=False)
    source = CdcStatusSource(
        outbox.connect_url, outbox.database_url, settings.connector_name, settings.slot_name
    )
    now = source.read()
    state, lag = now.connector, now.slot
    if as_json:
        click.echo(orjson.dumps(now.to_json()).decode())
        return
    if metrics:
        gauges = SlotMetrics()
        gauges.update(lag, now.slot_name, now.connector_name, bool(state and state.running))
        click.echo(gauges.exposition().decode(), nl=False)
        return
    if state is None:
        click.echo(f"connector:  {now.connector_name} not registered")
    else:
        click.echo(f"connector:  {state.name} {state.connector}")
        for task_id, task_state, trace in state.tasks:
            click.echo(f"task {task_id}:     {task_state}{'  ' + trace if trace else ''}")
    if lag is None:
        click.echo(f"slot:       {now.slot_name} does not exist")
    else:
        click.echo(
            f"slot:       {lag.slot} {'active' if lag.active else 'INACTIVE'}, "
            f"{lag.retained_bytes} bytes of WAL retained, {lag.unconfirmed_bytes} unconfirmed"
        )


def _lifecycle(ctx: click.Context, verb: str) -> None:
    outbox, settings = _settings(ctx)
    with ConnectClient(outbox.connect_url) as client:
        getattr(client, verb)(settings.connector_name)
    click.echo(f"connector {settings.connector_name} {verb[:-1]}ing")


@cdc.command()
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address of the endpoints.")
@click.option(
    "--metrics-port",
    default=9466,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port of the endpoints.",
)
@click.option(
    "--interval",
    default=15.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds between two reads of Connect and the slot.",
)
@LOG_LEVEL
@click.pass_context
def monitor(
    ctx: click.Context, metrics_host: str, metrics_port: int, interval: float, log_level: str
) -> None:
    """Serve the connector's state and the slot's WAL on /metrics, /healthz and /status.json.

    Debezium runs inside Kafka Connect: this small daemon is what Prometheus scrapes for the CDC
    relay (outbox_cdc_*). /healthz is 200 while the connector and its tasks run. Runs until
    SIGTERM/SIGINT (exit code 0).
    """
    from outboxkit.ops import logs
    from outboxkit.ops.endpoints import serve

    outbox, settings = _settings(ctx, changes=False)
    logs.configure(log_level)
    source = CdcStatusSource(
        outbox.connect_url, outbox.database_url, settings.connector_name, settings.slot_name
    )
    daemon = CdcMonitor(source, interval)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = serve(
        metrics_host, metrics_port, registry=daemon.metrics.registry, health=daemon.heartbeat, status=source
    )
    try:
        daemon.run(stop)
    finally:
        server.close()


@cdc.command()
@click.pass_context
def pause(ctx: click.Context) -> None:
    """Pause the connector (the slot keeps WAL meanwhile: watch `status`)."""
    _lifecycle(ctx, "pause")


@cdc.command()
@click.pass_context
def resume(ctx: click.Context) -> None:
    """Resume a paused connector."""
    _lifecycle(ctx, "resume")


@cdc.command()
@click.option(
    "--keep-slot",
    is_flag=True,
    help="Keep the slot and publication (to register again without losing events; the slot pins WAL).",
)
@click.pass_context
def remove(ctx: click.Context, keep_slot: bool) -> None:
    """Remove the connector, then drop its replication slot and publication."""
    outbox, settings = _settings(ctx, changes=not keep_slot)
    with ConnectClient(outbox.connect_url) as client:
        removed = client.delete(settings.connector_name)
    click.echo(f"connector {settings.connector_name} {'removed' if removed else 'was not registered'}")
    if keep_slot:
        return
    with connect(outbox.database_url, autocommit=True) as conn:
        dropped = drop_slot_when_released(conn, settings.slot_name)
        drop_publication(conn, settings.publication)
    click.echo(f"slot {settings.slot_name} {'dropped' if dropped else 'did not exist'}")
