"""The sites projector with every apply logged in `applied_log`, for the tests that run projector
processes: a double apply shows as a repeated event id, which the guarded read model would hide.

Dedupe by event id is off, so the offsets alone must prevent double applies."""

from __future__ import annotations

import os

import sqlalchemy as sa
from sqlalchemy import Connection

from outboxkit.examples.sites.projection import build_projector
from outboxkit.kafka.records import ReceivedEvent
from projectors.config import ProjectorConfig
from projectors.projector import EventHandler, Projector

log_metadata = sa.MetaData()
applied_log = sa.Table(
    "applied_log",
    log_metadata,
    sa.Column("projector", sa.Text, nullable=False),
    sa.Column("event_id", sa.Uuid, nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
)


def audit(projector: Projector, handler: EventHandler) -> EventHandler:
    def audited(event: ReceivedEvent, conn: Connection) -> None:
        handler(event, conn)
        conn.execute(
            applied_log.insert().values(
                projector=projector.name,
                event_id=event.id,
                partition=event.partition,
                offset=event.offset,
                pid=os.getpid(),
            )
        )

    return audited


def from_environment() -> Projector:
    config = ProjectorConfig(
        batch_size=int(os.environ.get("TEST_BATCH_SIZE", "100")),
        dedupe_event_ids=False,
        session_timeout_ms=6000,
    )
    base = build_projector(os.environ["TEST_TOPIC"], name=os.environ["TEST_PROJECTOR"])
    projector = Projector(base.name, base.topics, metadata=base.metadata, config=config)
    for event_type in sorted(base.event_types):
        handler = base.handler(event_type)
        assert handler is not None and not handler.batch
        projector.handles(event_type)(audit(projector, handler.function))
    return projector
