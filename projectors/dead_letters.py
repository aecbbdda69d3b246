"""A projector's dead letters, remembered in its database (table projector_dead_letters): list
them, replay them after a fix, discard them. The dead-letter topic keeps its copy either way.

Rebuilds: the rebuild's applier tries a remembered event again (its handler may be fixed by now);
if it fails again, it is remembered for the rebuild without being published to the dead-letter
topic a second time, and the swap hands the rebuild's list to the projector, so what was fixed
leaves the list and what still fails stays on it, once (projectors/tracking.py `take_over`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from confluent_kafka import Message
from sqlalchemy import Connection, Engine
from sqlalchemy.dialects.postgresql import insert

from outboxkit.kafka.records import ReceivedEvent, decode, header_pairs
from projectors.projector import Projector
from projectors.tracking import DEAD_LETTERS, OffsetStore


@dataclass(frozen=True)
class DeadLetter:
    """One remembered dead letter of a projector."""

    event_id: UUID
    event_type: str
    topic: str
    partition: int
    offset: int
    attempts: int
    reason: str
    dead_letter_topic: str
    dead_lettered_at: datetime


@dataclass(frozen=True)
class Replayed:
    """What a replay did with one dead letter: applied (error None), or still failing."""

    event_id: UUID
    error: str | None


def remember(
    conn: Connection,
    projector: str,
    event: ReceivedEvent,
    message: Message,
    *,
    error: BaseException,
    attempts: int,
    topic: str,
) -> None:
    """Remember `message` as dead-lettered by `projector` to `topic` (in the caller's transaction)."""
    pairs = header_pairs(message.headers())
    row = {
        "projector": projector,
        "event_id": event.id,
        "event_type": event.type,
        "topic": event.topic,
        "partition": event.partition,
        "offset": event.offset,
        "key": message.key(),
        "value": message.value(),
        "header_names": [k for k, _ in pairs],
        "header_values": [v for _, v in pairs],
        "reason": f"{type(error).__name__}: {error}"[:4000],
        "attempts": attempts,
        "dead_letter_topic": topic,
    }
    statement = insert(DEAD_LETTERS).values(row)
    changed = {k: statement.excluded[k] for k in ("reason", "attempts", "topic", "partition", "offset")}
    conn.execute(statement.on_conflict_do_update(index_elements=["projector", "event_id"], set_=changed))


def dead_lettered_before(conn: Connection, projectors: Collection[str], event_id: UUID) -> bool:
    """True when one of `projectors` (the live one, its rebuild) remembers `event_id` as dead-lettered."""
    query = sa.select(sa.literal(1)).where(
        DEAD_LETTERS.c.projector.in_(list(projectors)), DEAD_LETTERS.c.event_id == event_id
    )
    return conn.execute(query).first() is not None


def listed(conn: Connection, projector: str) -> list[DeadLetter]:
    """The projector's dead letters, in their partitions' order."""
    columns = [DEAD_LETTERS.c[f] for f in DeadLetter.__dataclass_fields__]
    query = (
        sa.select(*columns)
        .where(DEAD_LETTERS.c.projector == projector)
        .order_by(DEAD_LETTERS.c.topic, DEAD_LETTERS.c.partition, DEAD_LETTERS.c.offset)
    )
    return [DeadLetter(*row) for row in conn.execute(query)]


def discard(conn: Connection, projector: str, event_ids: Sequence[UUID]) -> list[UUID]:
    """Forget these dead letters (the dead-letter topic keeps its copies); returns those found."""
    statement = (
        sa.delete(DEAD_LETTERS)
        .where(DEAD_LETTERS.c.projector == projector, DEAD_LETTERS.c.event_id.in_(list(event_ids)))
        .returning(DEAD_LETTERS.c.event_id)
    )
    return list(conn.execute(statement).scalars())


def replay(engine: Engine, projector: Projector, event_ids: Sequence[UUID] | None = None) -> list[Replayed]:
    """Apply remembered dead letters (all, or `event_ids`) with the projector's handlers, each in
    its own transaction that also forgets it; one that fails again stays, with the new error.

    Safe while the projector runs: an event applied since (dedupe by `ce_id`) is only forgotten,
    and row versions (partition, offset) keep a replayed older event from overwriting newer state."""
    with engine.connect() as conn:
        wanted = [d.event_id for d in listed(conn, projector.name)]
    if event_ids is not None:
        wanted = [i for i in wanted if i in set(event_ids)]
    return [_replay_one(engine, projector, event_id) for event_id in wanted]


def _replay_one(engine: Engine, projector: Projector, event_id: UUID) -> Replayed:
    try:
        with engine.begin() as conn:
            row = conn.execute(
                sa.select(DEAD_LETTERS)
                .where(DEAD_LETTERS.c.projector == projector.name, DEAD_LETTERS.c.event_id == event_id)
                .with_for_update()
            ).one()
            event = decode(
                row.topic,
                row.partition,
                row.offset,
                key=row.key,
                value=row.value,
                headers=list(zip(row.header_names, row.header_values, strict=True)),
            )
            fresh = (
                OffsetStore(projector.name).remember(conn, [event.id])
                if projector.config.dedupe_event_ids
                else {event.id}
            )
            handler = projector.handler(event.type)
            if event.id in fresh and handler is not None:
                handler.function([event] if handler.batch else event, conn)
            discard(conn, projector.name, [event_id])
    except Exception as err:
        return Replayed(event_id, f"{type(err).__name__}: {err}")
    return Replayed(event_id, None)
