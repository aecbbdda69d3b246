"""`outbox projector ...`: run, inspect and rebuild projectors.

NAME is an import path `package.module:attribute` naming a `Projector`, or a function without
arguments that returns one (e.g. `outboxkit.examples.sites.projection:from_environment`). The module is
imported from the current directory (or `--app-dir DIR`) or the installed packages: the directory
goes first on sys.path, as `python -m` and uvicorn do (an installed console script has only its own
bin/ there).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
import orjson

from outbox.config import OutboxSettings
from outbox.errors import OutboxError
from outboxkit.cli.daemon import endpoints, stopped_by_signals
from outboxkit.cli.imports import APP_DIR, import_reference
from outboxkit.cli.progress import Progress
from outboxkit.cli.settings import (
    JSON_OUTPUT,
    LOG_LEVEL,
    CommandGroup,
    CommandSettings,
    file_defaults,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine


log = logging.getLogger("outboxkit.projector")

CONFIG_OPTIONS = ("batch_size", "instance_id", "on_failure")
"""The options of `run` that override the projector's own ProjectorConfig (unset: its value)."""


def load(name: str, **overrides: Any) -> Any:
    """Projector NAME (outboxkit.cli.imports: from --app-dir or the current directory first);
    `overrides`: ProjectorConfig fields (None: not given)."""
    from projectors.projector import load_projector

    projector = import_reference(load_projector, name)
    changes = {k: v for k, v in overrides.items() if v is not None}
    if changes:
        projector.config = dataclasses.replace(projector.config, **changes)
    return projector


@contextmanager
def database(settings: OutboxSettings) -> Iterator[Engine]:
    """An engine for the command's duration."""
    from projectors.database import engine_for

    engine = engine_for(settings.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@click.group("projector", cls=CommandGroup)
@APP_DIR
def projector() -> None:
    """Run, inspect and rebuild projectors (NAME: `package.module:attribute`)."""


@projector.command()
@click.argument("name")
@APP_DIR
@click.option("--batch-size", type=click.IntRange(min=1), help="Most records per database transaction.")
@click.option("--instance-id", help="Kafka static membership id of this instance.")
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
    """Run one instance of projector NAME until SIGINT or SIGTERM.

    Logs are JSON lines on stderr; a projector that cannot go on logs why and exits with code 1.
    Every option can also be set in the config file's `[projector]` table (`batch_size = 200`;
    flags win over it).
    """
    from outboxkit.ops import logs
    from outboxkit.ops.health import Heartbeat
    from projectors.metrics import ProjectorMetrics
    from projectors.runtime import ProjectorRunner
    from projectors.status import ProjectorStatusSource

    loaded = CommandSettings(ctx)
    options = file_defaults(ctx, loaded, "projector", flags)
    loaded.database_url(changes=True, say=False)
    settings, kafka = loaded.outbox, loaded.kafka
    definition = load(options["name"], **{option: options[option] for option in CONFIG_OPTIONS})
    logs.configure(options["log_level"])
    loaded.log_database(log)
    metrics = ProjectorMetrics()
    health = Heartbeat(max(options["stale_after"], 3 * definition.config.batch_timeout))
    config = definition.config
    started = {"projector": definition.name, "group": definition.group_id}
    started.update({option: getattr(config, option) for option in CONFIG_OPTIONS})
    try:
        with stopped_by_signals() as stop, database(settings) as engine:
            status = ProjectorStatusSource(definition, engine, kafka)
            with endpoints(options, registry=metrics.registry, health=health, status=status):
                log.info("projector starting", extra=started)
                ProjectorRunner(definition, engine, kafka, metrics=metrics, health=health).run(stop)
        log.info("projector stopped", extra={"projector": definition.name})
    except OutboxError as err:
        log.error("projector cannot go on: %s", err, extra={"projector": definition.name})
        ctx.exit(1)


@projector.command()
@click.argument("name")
@APP_DIR
@JSON_OUTPUT
@click.pass_context
def status(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show projector NAME's stored offset, high watermark and lag per partition."""
    from projectors.status import ProjectorStatusSource

    loaded = CommandSettings(ctx)
    loaded.database_url(changes=False)
    settings, kafka = loaded.outbox, loaded.kafka
    definition = load(name)
    with database(settings) as engine:
        now = ProjectorStatusSource(definition, engine, kafka).read()
    if as_json:
        click.echo(orjson.dumps(now.to_json()).decode())
        return
    click.echo(f"projector {now.projector} (group {now.group})")
    click.echo(f"{'topic':<40} {'partition':>9} {'stored':>12} {'high':>12} {'lag':>10}")
    for row in now.partitions:
        stored = "-" if row.next_offset is None else str(row.next_offset)
        click.echo(f"{row.topic:<40} {row.partition:>9} {stored:>12} {row.high:>12} {row.lag:>10}")
    click.echo(f"total lag {now.total_lag}")
    for row in now.partitions:
        if row.beyond_log_end:
            click.echo(
                f"{row.topic}[{row.partition}]: stored offset {row.next_offset} is beyond the log end "
                f"{row.high} (topic recreated or truncated): rebuild the read model"
            )


@projector.command()
@click.argument("name")
@APP_DIR
@click.pass_context
def rebuild(ctx: click.Context, name: str) -> None:
    """Rebuild projector NAME's read model from the start of its topics and swap it in."""
    from projectors.rebuild import rebuild as rebuild_read_model

    loaded = CommandSettings(ctx)
    loaded.database_url(changes=True)
    settings, kafka = loaded.outbox, loaded.kafka
    definition = load(name)
    with (
        database(settings) as engine,
        Progress(f"rebuilding {definition.name}", 0) as bar,
    ):
        count = rebuild_read_model(definition, engine, kafka, progress=bar.update)
    click.echo(f"rebuilt {definition.name} from {count} records and swapped it in")


if __name__ == "__main__":
    projector()
