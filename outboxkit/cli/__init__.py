"""The `outbox` command."""

from __future__ import annotations

import click

from outboxkit.cli.cdc import cdc
from outboxkit.cli.console import console
from outboxkit.cli.dead_letters import dead_letters
from outboxkit.cli.doctor import doctor
from outboxkit.cli.kv import kv
from outboxkit.cli.migrate import migrate
from outboxkit.cli.processor import processor
from outboxkit.cli.projector import projector
from outboxkit.cli.relay import relay
from outboxkit.cli.replay import replay
from outboxkit.cli.settings import CONFIG, CommandGroup, CommandSettings


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database-url", help="PostgreSQL URL of the outbox [env OUTBOX_DATABASE_URL].")
@click.option("--bootstrap-servers", help="Kafka brokers [env OUTBOX_KAFKA_BOOTSTRAP_SERVERS].")
@CONFIG
@click.version_option(package_name="outboxkit", prog_name="outbox", message="%(prog)s %(version)s")
@click.pass_context
def main(ctx: click.Context, database_url: str | None, bootstrap_servers: str | None) -> None:
    """outboxkit: transactional outbox, relays and projectors for PostgreSQL and Kafka.

    Settings: flags > OUTBOX_... environment variables > the --config file > defaults.
    """
    flags = {"database_url": database_url, "kafka_bootstrap_servers": bootstrap_servers}
    ctx.ensure_object(dict).update({k: v for k, v in flags.items() if v is not None})


@main.command()
@click.option(
    "--relay",
    type=click.Choice(["polling", "cdc"]),
    default="polling",
    show_default=True,
    help="Publish with the polling relay, or with Debezium CDC in Kafka Connect.",
)
@click.pass_context
def demo(ctx: click.Context, relay: str) -> None:
    """Run the demo pipeline against the configured PostgreSQL and Kafka, printing each step."""
    from outboxkit.examples.demo import run_demo

    settings = CommandSettings(ctx)
    settings.database_url(changes=False)  # the demo is for the local stack: its default is fine
    run_demo(settings.outbox, echo=click.echo, relay=relay)


main.add_command(migrate)
main.add_command(relay)
main.add_command(projector)
projector.add_command(dead_letters)
main.add_command(processor)
main.add_command(replay)
main.add_command(cdc)
main.add_command(doctor)
main.add_command(console)
main.add_command(kv)
