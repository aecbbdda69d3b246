"""The projector the consumer conformance suite runs, as `outbox projector run
tests.consumers.projector_target:from_environment`.

Each numbered event moves its key's row in `conformance_state` to the event's `seq` and version,
guarded by the row version (an UPDATE with `newer_than_row`, else a `versioned_upsert`), and logs
the application in `conformance_applied`, both in the batch's transaction. A double apply shows in
the log as a repeated event id, which the guarded state alone would hide. An event with
`"fail": true` always fails.

Environment: CONFORMANCE_PROJECTOR (name), CONFORMANCE_TOPIC, CONFORMANCE_DLQ (dead-letter topic),
CONFORMANCE_INSTANCE (logged with each application), CONFORMANCE_DEDUPE (`1`: skip republished
`ce_id`s; off by default, so that only the stored offsets prevent double applies).
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from sqlalchemy import Connection

from projectors import (
    Projector,
    ProjectorConfig,
    ReceivedEvent,
    newer_than_row,
    version_columns,
    version_of,
    versioned_upsert,
)
from tests.consumers.workload import EVENT_TYPE

metadata = sa.MetaData()
state = sa.Table(
    "conformance_state",
    metadata,
    sa.Column("projector", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    *version_columns(),
)
applied = sa.Table(
    "conformance_applied",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("projector", sa.Text, nullable=False, index=True),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("instance", sa.Text, nullable=False),
    sa.Column("changed", sa.Boolean, nullable=False),
)


class PoisonedEventError(Exception):
    """The handler's answer to an event marked to fail."""


def build(name: str, topic: str, dead_letter_topic: str, *, instance: str, dedupe: bool) -> Projector:
    config = ProjectorConfig(
        dead_letter_topic=dead_letter_topic,
        max_retries=1,
        retry_backoff=0.01,
        dedupe_event_ids=dedupe,
        session_timeout_ms=6000,
    )
    projector = Projector(name, [topic], config=config)
    # RETURNING says whether the guarded upsert wrote (psycopg's rowcount of an upsert is -1).
    insert = versioned_upsert(state, ["projector", "key"], columns=["seq"]).returning(state.c.seq)

    @projector.handles(EVENT_TYPE)
    def apply(event: ReceivedEvent, conn: Connection) -> None:
        payload = event.payload
        if payload.get("fail"):
            raise PoisonedEventError(f"event {payload['key']}#{payload['seq']} is poisoned: it always fails")
        row = {"projector": name, "key": event.subject, "seq": payload["seq"], **version_of(event)}
        update = (
            sa.update(state)
            .where(state.c.projector == name, state.c.key == event.subject)
            .where(newer_than_row(state, event.partition, event.offset))
            .values(seq=payload["seq"], **version_of(event))
        )
        changed = conn.execute(update).rowcount == 1 or conn.execute(insert, row).first() is not None
        conn.execute(
            applied.insert().values(
                projector=name,
                event_id=str(event.id),
                key=event.subject,
                seq=payload["seq"],
                partition=event.partition,
                offset=event.offset,
                instance=instance,
                changed=changed,
            )
        )

    return projector


def from_environment() -> Projector:
    return build(
        os.environ["CONFORMANCE_PROJECTOR"],
        os.environ["CONFORMANCE_TOPIC"],
        os.environ["CONFORMANCE_DLQ"],
        instance=os.environ.get("CONFORMANCE_INSTANCE", str(os.getpid())),
        dedupe=os.environ.get("CONFORMANCE_DEDUPE") == "1",
    )
