"""`outbox projector ...`: run, inspect and rebuild projectors.

NAME is an import path `package.module:attribute` naming a `Projector`, or a function without
arguments that returns one (e.g. `outboxkit.examples.sites.projection:from_environment`). The module is
imported from the current directory or the installed packages.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from outbox.config import OutboxSettings
from outbox.errors import OutboxError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from outboxkit.kafka.settings import KafkaSettings


def settings_of(ctx: click.Context) -> OutboxSettings:
    """The environment's settings with the `outbox` group's flags (none when this group runs on its
    own); invalid ones are the command's error."""
    flags = ctx.find_object(dict) or {}
    try:
        return OutboxSettings.load(**flags)
    except OutboxError as err:
        raise click.ClickException(str(err)) from err


def kafka_of(settings: OutboxSettings) -> KafkaSettings:
    """The cluster and its login (OUTBOX_KAFKA_...) with the brokers the command was given."""
    from outboxkit.kafka.settings import KafkaSettings

    try:
        return KafkaSettings.load(bootstrap_servers=settings.kafka_bootstrap_servers)
    except OutboxError as err:
        raise click.ClickException(str(err)) from err


def load(name: str, **overrides: Any) -> Any:
    from projectors.projector import load_projector

    try:
        projector = load_projector(name)
    except OutboxError as err:
        raise click.BadParameter(str(err), param_hint="NAME") from err
    changes = {k: v for k, v in overrides.items() if v is not None}
    if changes:
        projector.config = dataclasses.replace(projector.config, **changes)
    return projector


@contextmanager
def database(settings: OutboxSettings) -> Iterator[Engine]:
    """An engine for the command's duration; outboxkit errors become click errors (exit 1)."""
    from projectors.database import engine_for

    engine = engine_for(settings.database_url)
    try:
        yield engine
    except OutboxError as err:
        raise click.ClickException(str(err)) from err
    finally:
        engine.dispose()


@click.group("projector")
def projector() -> None:
    """Run, inspect and rebuild projectors (NAME: `package.module:attribute`)."""


@projector.command()
@click.argument("name")
@click.option("--batch-size", type=click.IntRange(min=1), help="Most records per database transaction.")
@click.option("--instance-id", help="Kafka static membership id of this instance.")
@click.option("--on-failure", type=click.Choice(["dead-letter", "stop"]), help="After a handler's retries.")
@click.option("--metrics-port", type=int, help="Serve Prometheus metrics on this port.")
@click.pass_context
def run(
    ctx: click.Context,
    name: str,
    *,
    batch_size: int | None,
    instance_id: str | None,
    on_failure: str | None,
    metrics_port: int | None,
) -> None:
    """Run one instance of projector NAME until SIGINT or SIGTERM."""
    from prometheus_client import start_http_server

    from projectors.metrics import ProjectorMetrics
    from projectors.runtime import ProjectorRunner

    settings = settings_of(ctx)
    definition = load(name, batch_size=batch_size, instance_id=instance_id, on_failure=on_failure)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    metrics = ProjectorMetrics()
    if metrics_port is not None:
        start_http_server(metrics_port, registry=metrics.registry)
    try:
        with database(settings) as engine:
            ProjectorRunner(definition, engine, kafka_of(settings), metrics=metrics).run(stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@projector.command()
@click.argument("name")
@click.pass_context
def status(ctx: click.Context, name: str) -> None:
    """Show projector NAME's stored offset, high watermark and lag per partition."""
    from projectors.status import projector_status

    settings = settings_of(ctx)
    definition = load(name)
    with database(settings) as engine:
        rows = projector_status(definition, engine, kafka_of(settings))
    click.echo(f"projector {definition.name} (group {definition.group_id})")
    click.echo(f"{'topic':<40} {'partition':>9} {'stored':>12} {'high':>12} {'lag':>10}")
    for row in rows:
        stored = "-" if row.next_offset is None else str(row.next_offset)
        click.echo(f"{row.topic:<40} {row.partition:>9} {stored:>12} {row.high:>12} {row.lag:>10}")
    click.echo(f"total lag {sum(row.lag for row in rows)}")
    for row in rows:
        if row.beyond_log_end:
            click.echo(
                f"{row.topic}[{row.partition}]: stored offset {row.next_offset} is beyond the log end "
                f"{row.high} (topic recreated or truncated): rebuild the read model"
            )


@projector.command()
@click.argument("name")
@click.pass_context
def rebuild(ctx: click.Context, name: str) -> None:
    """Rebuild projector NAME's read model from the start of its topics and swap it in."""
    from projectors.rebuild import rebuild as rebuild_read_model

    settings = settings_of(ctx)
    definition = load(name)
    with (
        database(settings) as engine,
        click.progressbar(length=1, label=f"rebuilding {definition.name}") as bar,
    ):

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        count = rebuild_read_model(definition, engine, kafka_of(settings), progress=progress)
    click.echo(f"rebuilt {definition.name} from {count} records and swapped it in")


if __name__ == "__main__":
    projector()
