"""`outbox console`: the operator console, a page showing every component's state live."""

from __future__ import annotations

import logging
import os

import click

from outboxkit.cli.imports import APP_DIR
from outboxkit.cli.settings import CONFIG, LOG_LEVEL, CommandSettings

log = logging.getLogger("outboxkit.console")

TOKEN_VARIABLE = "OUTBOX_CONSOLE_TOKEN"


@click.command()
@CONFIG
@APP_DIR
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve the page on.")
@click.option(
    "--port", default=8090, show_default=True, type=click.IntRange(1, 65535), help="Port of the page."
)
@click.option(
    "--projector",
    "projectors",
    multiple=True,
    metavar="NAME",
    help="A projector to watch, as `package.module:attribute` (repeatable).",
)
@click.option(
    "--processor",
    "processors",
    multiple=True,
    metavar="NAME",
    help="A processor to watch, as `package.module:attribute` (repeatable).",
)
@click.option(
    "--kv-topic", "kv_topics", multiple=True, metavar="NAME", help="A KV store's topic to watch (repeatable)."
)
@click.option(
    "--gateway",
    "gateways",
    multiple=True,
    metavar="URL",
    help="A gateway's endpoints, e.g. http://127.0.0.1:9468 (its --metrics-port; repeatable).",
)
@click.option("--cdc", is_flag=True, help="Also watch the CDC relay's connector and slot ([cdc] settings).")
@click.option(
    "--interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0.2),
    help="Seconds between two reads of every component.",
)
@click.option(
    "--stuck-after",
    default=30.0,
    show_default=True,
    help="Seconds an event may wait before the relay counts as stuck.",
)
@click.option(
    "--lag-threshold",
    default=1000,
    show_default=True,
    help="Records behind from which a projector counts as lagging.",
)
@click.option(
    "--allow-actions",
    is_flag=True,
    help=f"Allow requeue and discard of quarantined events, with the token in {TOKEN_VARIABLE}.",
)
@LOG_LEVEL
@click.pass_context
def console(
    ctx: click.Context,
    *,
    host: str,
    port: int,
    projectors: tuple[str, ...],
    processors: tuple[str, ...],
    kv_topics: tuple[str, ...],
    gateways: tuple[str, ...],
    cdc: bool,
    interval: float,
    stuck_after: float,
    lag_threshold: int,
    allow_actions: bool,
    log_level: str,
) -> None:
    """Serve the operator console until SIGTERM/SIGINT.

    The page shows the polling relay (backlog, lag, shards and owners), the quarantine with its
    reasons, the CDC relay (with --cdc), each --projector (lag per partition, dead letters,
    rebuild progress), each --processor (lag, hanging transactions), each --kv-topic (records,
    compaction) and each --gateway (health, connections, messages), updated live over
    Server-Sent Events, with a chart of the last minutes.
    Read-only unless started with --allow-actions and a token of at least 16 characters in
    OUTBOX_CONSOLE_TOKEN; each action is logged.
    """
    from outboxkit.cli.processor import load as load_processor
    from outboxkit.cli.projector import load
    from outboxkit.console.actions import QuarantineActions
    from outboxkit.console.app import create_app
    from outboxkit.console.sources import ConsoleSources, Thresholds, describe
    from outboxkit.console.state import Poller
    from outboxkit.ops import logs
    from outboxkit.ops.asgi import run_asgi
    from projectors.database import engine_for
    from relay.cdc import CdcSettings
    from relay.settings import RelaySettings
    from relay.status import CdcStatusSource, RelayStatusSource

    loaded = CommandSettings(ctx)
    outbox, kafka = loaded.outbox, loaded.kafka
    relay_settings = loaded.section("relay", RelaySettings)
    token = os.environ.get(TOKEN_VARIABLE) if allow_actions else None
    if allow_actions and not token:
        raise click.UsageError(
            f"--allow-actions needs a token in {TOKEN_VARIABLE} (e.g. `openssl rand -hex 16`)"
        )
    database_url = loaded.database_url(changes=allow_actions, say=False)
    actions = QuarantineActions(database_url, token)
    watched = [load(name) for name in projectors]
    watched_processors = [load_processor(name) for name in processors]
    cdc_source = None
    if cdc:
        cdc_settings = loaded.section("cdc", CdcSettings)
        cdc_source = CdcStatusSource(
            outbox.connect_url, database_url, cdc_settings.connector_name, cdc_settings.slot_name
        )
    logs.configure(log_level)
    engine = engine_for(database_url, pool_size=2)
    sources = ConsoleSources(
        database_url,
        kafka,
        engine,
        relay=RelayStatusSource(database_url, relay_settings.group, relay_settings.shards),
        cdc=cdc_source,
        projectors=watched,
        processors=watched_processors,
        kv_topics=kv_topics,
        gateways=gateways,
        thresholds=Thresholds(stuck_after=stuck_after, lag=lag_threshold),
    )
    poller = Poller(sources.read, interval).start()
    app = create_app(poller, actions, describe(sources))
    log.info(
        "console serving",
        extra={
            "address": f"http://{host}:{port}/",
            "actions": actions.enabled,
            "projectors": list(projectors),
        },
    )
    try:
        run_asgi(app, host, port)
    finally:
        poller.stop()
        engine.dispose()
