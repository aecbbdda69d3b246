"""`outbox projector dead-letters list|replay|discard NAME`: the records a projector dead-lettered,
remembered in its database (projectors/dead_letters.py)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import click

from outboxkit.cli.projector import database, load
from outboxkit.cli.settings import CONFIG, CommandGroup, CommandSettings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from projectors.projector import Projector


def _migrated(engine: Engine, definition: Projector) -> Engine:
    """`engine`, once the projector's tables are there (else the error says how to make them)."""
    from projectors.schema import check_tracking_tables

    with engine.connect() as conn:
        check_tracking_tables(conn, definition)
    return engine


def _ids(values: tuple[str, ...]) -> list[uuid.UUID]:
    try:
        return [uuid.UUID(v) for v in values]
    except ValueError as err:
        raise click.BadParameter(f"{err}: a dead letter is named by its event's ce_id (a UUID)") from err


@click.group("dead-letters", cls=CommandGroup)
@CONFIG
def dead_letters() -> None:
    """List, replay (after a fix) or discard the events projector NAME dead-lettered."""


@dead_letters.command("list")
@click.argument("name")
@click.pass_context
def list_(ctx: click.Context, name: str) -> None:
    """List projector NAME's dead letters (in partition order) with their reasons."""
    from projectors.dead_letters import listed

    definition = load(name)
    with database(CommandSettings(ctx).outbox) as engine, _migrated(engine, definition).connect() as conn:
        rows = listed(conn, definition.name)
    for d in rows:
        click.echo(
            f"{d.event_id}  {d.event_type}  {d.topic}[{d.partition}]@{d.offset}  -> {d.dead_letter_topic}"
            f"  at {d.dead_lettered_at:%Y-%m-%d %H:%M:%S}, {d.attempts} attempt(s)\n    {d.reason}"
        )
    click.echo(f"{len(rows)} dead-lettered")


@dead_letters.command()
@click.argument("name")
@click.argument("ce_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Replay every dead letter of the projector.")
@click.pass_context
def replay(ctx: click.Context, name: str, ce_ids: tuple[str, ...], every: bool) -> None:
    """Apply dead letters again (CE_IDS, or --all) with NAME's handlers, after fixing the cause.

    Each is applied in its own transaction and forgotten; one that fails again stays listed.
    Exit code 1 when some failed again."""
    from projectors.dead_letters import replay as replay_dead_letters

    if bool(ce_ids) == every:
        raise click.UsageError("name the dead letters to replay (CE_IDS) or pass --all, not both")
    definition = load(name)
    with database(CommandSettings(ctx).outbox) as engine:
        done = replay_dead_letters(_migrated(engine, definition), definition, None if every else _ids(ce_ids))
    for outcome in done:
        click.echo(
            f"{outcome.event_id}: {'applied' if outcome.error is None else 'failed again: ' + outcome.error}"
        )
    failed = sum(1 for o in done if o.error is not None)
    click.echo(f"replayed {len(done) - failed} of {len(done)}")
    if failed:
        ctx.exit(1)


@dead_letters.command()
@click.argument("name")
@click.argument("ce_ids", nargs=-1, required=True)
@click.pass_context
def discard(ctx: click.Context, name: str, ce_ids: tuple[str, ...]) -> None:
    """Forget dead letters for good (the dead-letter topic keeps its copies)."""
    from projectors.dead_letters import discard as discard_dead_letters

    definition = load(name)
    ids = _ids(ce_ids)
    with database(CommandSettings(ctx).outbox) as engine, _migrated(engine, definition).begin() as conn:
        gone = discard_dead_letters(conn, definition.name, ids)
    click.echo(f"discarded {len(gone)} dead letter(s)" + "".join(f"\n{i}" for i in gone))
