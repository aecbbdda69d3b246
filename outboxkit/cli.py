"""The `outbox` command."""

from __future__ import annotations

import click

from outbox.config import OutboxSettings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database-url", envvar="OUTBOX_DATABASE_URL", help="PostgreSQL URL of the outbox.")
@click.option("--bootstrap-servers", envvar="OUTBOX_KAFKA_BOOTSTRAP_SERVERS", help="Kafka brokers.")
@click.pass_context
def main(ctx: click.Context, database_url: str | None, bootstrap_servers: str | None) -> None:
    """outboxkit: transactional outbox, relays and projectors for PostgreSQL and Kafka.

    Settings come from OUTBOX_... environment variables; flags override them.
    """
    overrides = {"database_url": database_url, "kafka_bootstrap_servers": bootstrap_servers}
    ctx.obj = OutboxSettings(**{k: v for k, v in overrides.items() if v is not None})


@main.command()
@click.pass_obj
def demo(settings: OutboxSettings) -> None:
    """Run the demo pipeline against the configured PostgreSQL and Kafka, printing each step."""
    from outboxkit.demo import run_demo

    run_demo(settings, echo=click.echo)
