"""`outbox processor ...`: run and inspect exactly-once processors.

REFERENCE is an import path `package.module:attribute` naming a `Processor`, or a function without
arguments that returns one (e.g. `outboxkit.examples.payments.payments:from_environment`), imported
from the current directory (or `--app-dir DIR`) first, then the installed packages.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import click
import orjson

from outbox.errors import OutboxError
from outboxkit.cli.daemon import endpoints, stopped_by_signals
from outboxkit.cli.imports import APP_DIR, import_reference
from outboxkit.cli.settings import (
    CONFIG,
    JSON_OUTPUT,
    LOG_LEVEL,
    CommandGroup,
    CommandSettings,
    file_defaults,
)

log = logging.getLogger("outboxkit.processor")

CONFIG_OPTIONS = ("instance_id", "transaction_ms", "transaction_records", "on_failure")
"""The options of `run` that override the processor's own ProcessorConfig (unset: its value)."""


def load(reference: str, **overrides: Any) -> Any:
    from outboxkit.processors.processor import load_processor

    found = import_reference(load_processor, reference, "REFERENCE")
    changes = {k: v for k, v in overrides.items() if v is not None}
    if changes:
        try:
            found.config = dataclasses.replace(found.config, **changes)
        except OutboxError as err:
            raise click.BadParameter(str(err)) from err
    return found


@click.group("processor", cls=CommandGroup)
@CONFIG
@APP_DIR
def processor() -> None:
    """Run and inspect exactly-once processors (REFERENCE: `package.module:attribute`)."""


@processor.command()
@click.argument("reference")
@APP_DIR
@click.option("--instance-id", help="Stable instance name: its transactional.id and static membership.")
@click.option("--transaction-ms", type=click.IntRange(min=1), help="Commit a transaction at this age.")
@click.option("--transaction-records", type=click.IntRange(min=1), help="...or at this many inputs.")
@click.option("--on-failure", type=click.Choice(["dead-letter", "stop"]), help="After a handler's retries.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address of the endpoints.")
@click.option("--metrics-port", type=int, help="Serve /metrics, /healthz and /status.json on this port.")
@click.option(
    "--stale-after",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds without a turn of the consume loop before /healthz says 503.",
)
@LOG_LEVEL
@click.pass_context
def run(ctx: click.Context, /, **flags: Any) -> None:
    """Run one instance of processor REFERENCE until SIGINT or SIGTERM.

    Logs are JSON lines on stderr; a processor that cannot go on logs why and exits with code 1.
    Every option can also be set in the config file's `[processor]` table (`transaction_ms = 250`;
    flags win over it).
    """
    from outboxkit.ops import logs
    from outboxkit.ops.collector import freeze_alive_objects
    from outboxkit.ops.health import Heartbeat
    from outboxkit.processors.metrics import ProcessorMetrics
    from outboxkit.processors.running import runner_for
    from outboxkit.processors.status import ProcessorStatusSource

    loaded = CommandSettings(ctx)
    options = file_defaults(ctx, loaded, "processor", flags)
    definition = load(options["reference"], **{name: options[name] for name in CONFIG_OPTIONS})
    if definition.mode == "database":  # it writes there: no silent fall-back to the default URL
        loaded.database_url(changes=True, say=False)
    logs.configure(options["log_level"])
    if definition.mode == "database":
        loaded.log_database(log)
    metrics = ProcessorMetrics()
    health = Heartbeat(max(options["stale_after"], 3 * definition.config.transaction_ms / 1000))
    config = definition.config
    fields = {"processor": definition.name, "mode": definition.mode, "group": definition.group_id}
    started = {**fields, **{name: getattr(config, name) for name in CONFIG_OPTIONS}}
    status = ProcessorStatusSource(definition, loaded.kafka, database_url=loaded.outbox.database_url)
    try:
        with (
            stopped_by_signals() as stop,
            runner_for(definition, loaded.outbox, loaded.kafka, metrics=metrics, health=health) as runner,
            endpoints(options, registry=metrics.registry, health=health, status=status),
        ):
            log.info("processor starting", extra=started)
            # The daemon's process is its own: what its start-up made is frozen out of the cycle
            # collector (an embedding service's collector is left alone).
            freeze_alive_objects()
            runner.run(stop)
        log.info("processor stopped", extra=fields)
    except OutboxError as err:
        log.error("processor cannot go on: %s", err, extra=fields)
        ctx.exit(1)


@processor.command()
@click.argument("reference")
@APP_DIR
@JSON_OUTPUT
@click.option(
    "--hanging-after",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds an open transaction may pin a partition's last stable offset before it counts as hanging.",
)
@click.pass_context
def status(ctx: click.Context, reference: str, as_json: bool, hanging_after: float) -> None:
    """Show processor REFERENCE's committed position, end and lag per input partition, and any
    transaction that holds a partition's last stable offset back."""
    from outboxkit.processors.status import ProcessorStatusSource

    loaded = CommandSettings(ctx)
    definition = load(reference)
    try:
        now = ProcessorStatusSource(
            definition, loaded.kafka, database_url=loaded.outbox.database_url, hanging_after=hanging_after
        ).read()
    except OutboxError as err:
        raise click.ClickException(str(err)) from err
    if as_json:
        click.echo(orjson.dumps(now.to_json()).decode())
        return
    click.echo(f"processor {now.processor} (mode {now.mode}, group {now.group})")
    click.echo(f"{'topic':<40} {'partition':>9} {'position':>12} {'stable':>12} {'end':>12} {'lag':>10}")
    for row in now.partitions:
        position = "-" if row.position is None else str(row.position)
        click.echo(
            f"{row.topic:<40} {row.partition:>9} {position:>12} {row.stable:>12} {row.end:>12} {row.lag:>10}"
        )
    click.echo(f"total lag {now.total_lag}")
    for row in now.partitions:
        if row.hanging:
            click.echo(
                f"{row.topic}[{row.partition}]: a transaction open for {row.open_seconds:.0f} s holds the "
                f"last stable offset at {row.stable} ({row.end - row.stable} offsets behind the end): "
                "readers with read_committed wait; find the producer with kafka-transactions.sh "
                "find-hanging and abort it"
            )
        if row.offsets_held:
            shown = "-" if row.position is None else row.position
            click.echo(
                f"{row.topic}[{row.partition}]: an open transaction holds the group's committed offset "
                f"(shown: the last committed, {shown}): an instance taking the partition waits "
                "until it ends; past its timeout, find it with kafka-transactions.sh describe-producers "
                f"--topic __consumer_offsets --partition {now.offsets_partition} and abort it "
                "(docs/processors.md, 'A hanging transaction')"
            )
