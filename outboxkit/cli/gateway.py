"""`outbox gateway`: the WebSocket gateway that pushes status events to browsers (docs/gateway.md)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from outboxkit.cli.settings import CONFIG, LOG_LEVEL, CommandGroup, CommandSettings, file_defaults

log = logging.getLogger("outboxkit.gateway")

SECRET_VARIABLE = "OUTBOX_GATEWAY_SECRET"

F = TypeVar("F", bound=Callable[..., Any])


def tuning(flag: str, default: float | bool, help: str) -> Callable[[F], F]:
    """An option with an OUTBOX_GATEWAY_<NAME> variable; an int or float default takes values >= 1
    or > 0 (the checks of GatewayConfig, so that a bad value is refused before anything starts)."""
    name = flag.split("/", maxsplit=1)[0].removeprefix("--").replace("-", "_").upper()
    kind: click.FloatRange | click.IntRange | None = None
    if isinstance(default, float):
        kind = click.FloatRange(min=0, min_open=True)
    elif not isinstance(default, bool):
        kind = click.IntRange(min=1)
    variable = f"OUTBOX_GATEWAY_{name}"
    return click.option(
        flag, default=default, show_default=True, type=kind, envvar=variable, help=f"{help} [env {variable}]"
    )


@click.group("gateway", cls=CommandGroup)
@CONFIG
def gateway() -> None:
    """Push status events from Kafka to browsers over WebSockets."""


@gateway.command()
@click.option(
    "--topic",
    "topics",
    multiple=True,
    envvar="OUTBOX_GATEWAY_TOPICS",
    help="A status topic to follow, all partitions (repeatable) [env OUTBOX_GATEWAY_TOPICS].",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address of the WebSocket endpoint.")
@click.option("--port", default=8070, show_default=True, type=click.IntRange(1, 65535), help="Its port.")
@click.option("--owner-field", default="user_id", show_default=True, help="Payload field naming the user.")
@click.option("--subject-prefix", default="job", show_default=True, help="Channel `<prefix>:<ce_subject>`.")
@tuning("--queue-size", 1000, "Messages waiting for one client before it is cut off as too slow (4008).")
@tuning("--ping-interval", 20.0, "Seconds between WebSocket pings; no pong within as long: dropped.")
@tuning("--connect-timeout", 10.0, "Seconds a client has to send its `connect` message; then 4001.")
@tuning("--max-subscriptions", 100, "Channels one connection may subscribe to; more: error `too_many`.")
@tuning("--replay-timeout", 30.0, "Seconds a resume's replay may wait for Kafka; then `recovered: false`.")
@tuning("--partition-check-interval", 30.0, "Seconds between looks for partitions added to the topics.")
@tuning(
    "--per-message-deflate/--no-per-message-deflate",
    False,
    "Accept a client's offer to compress frames (every browser offers it): each frame is then"
    " compressed for each connection on its own, which costs the gateway CPU per client.",
)
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="Address of /metrics and /healthz."
)
@click.option("--metrics-port", type=int, help="Serve /metrics and /healthz on this port.")
@LOG_LEVEL
@click.pass_context
def run(ctx: click.Context, /, **flags: Any) -> None:
    """Serve the gateway until SIGTERM/SIGINT (exit code 0).

    Tokens are JWT (HS256) signed with the secret in OUTBOX_GATEWAY_SECRET (at least 32 bytes),
    naming the user in `sub`. Each process follows every partition of the --topic topics, so any
    number of them can stand behind a load balancer. Every option can also be set in the config
    file's `[gateway]` table (`queue_size = 500`; flags and variables win over it).
    """
    from outbox.errors import ConfigurationError
    from outboxkit.gateway.app import create_app
    from outboxkit.gateway.config import GatewayConfig
    from outboxkit.gateway.metrics import GatewayMetrics
    from outboxkit.ops import logs
    from outboxkit.ops.asgi import run_asgi
    from outboxkit.ops.endpoints import serve
    from outboxkit.ops.health import Heartbeat

    settings = CommandSettings(ctx)
    options = file_defaults(ctx, settings, "gateway", flags)
    names = tuple(name for given in options["topics"] for name in given.split())
    try:
        config = GatewayConfig(
            topics=names,
            secret=os.environ.get(SECRET_VARIABLE, ""),
            owner_field=options["owner_field"],
            subject_prefix=options["subject_prefix"],
            queue_size=options["queue_size"],
            ping_interval=options["ping_interval"],
            connect_timeout=options["connect_timeout"],
            max_subscriptions=options["max_subscriptions"],
            replay_timeout=options["replay_timeout"],
            partition_check_interval=options["partition_check_interval"],
        )
    except ConfigurationError as err:
        raise click.UsageError(str(err)) from err
    kafka = settings.kafka
    logs.configure(options["log_level"])
    metrics, heartbeat = GatewayMetrics(), Heartbeat()
    app = create_app(config, kafka, metrics, heartbeat)
    endpoints = None
    if options["metrics_port"] is not None:
        endpoints = serve(
            options["metrics_host"], options["metrics_port"], registry=metrics.registry, health=heartbeat
        )
    host, port = options["host"], options["port"]
    log.info("gateway serving", extra={"address": f"ws://{host}:{port}/ws", "topics": list(names)})
    try:
        run_asgi(
            app,
            host,
            port,
            ping_interval=options["ping_interval"],
            per_message_deflate=options["per_message_deflate"],
        )
    finally:
        if endpoints is not None:
            endpoints.close()
