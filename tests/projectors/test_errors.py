"""With on_failure=stop a failing handler stops the projector, its offset left before the record;
ORM sessions in handlers write inside the batch's transaction. (Dead-lettering, with the reason in
the headers, is the consumer conformance suite's poison case: tests/consumers/.)"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from confluent_kafka import Producer
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from outboxkit.examples.sites.events import envelope
from outboxkit.kafka.records import ReceivedEvent
from projectors.config import ProjectorConfig
from projectors.errors import HandlerFailedError
from projectors.projector import Projector
from tests.projectors.conftest import project, running, stored_total, wait_until
from tests.stack.test_kafka import consume_all

notes = sa.Table("error_test_notes", sa.MetaData(), sa.Column("event_id", sa.Uuid, primary_key=True))


def noting_projector(topic: str, name: str, config: ProjectorConfig, attempts: list[str]) -> Projector:
    projector = Projector(name, [topic], config=config)

    @projector.handles("note.taken")
    def take(event: ReceivedEvent, conn: Connection) -> None:
        if event.payload.get("poison"):
            attempts.append(str(event.id))
            raise ValueError(f"poisoned note {event.payload['n']}")
        conn.execute(notes.insert().values(event_id=event.id))

    return projector


@pytest.fixture
def notes_db(engine: Engine) -> Engine:
    with engine.begin() as conn:
        notes.drop(conn, checkfirst=True)
        notes.create(conn)
    return engine


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value, headers in records:
        producer.produce(topic, key=key, value=value, headers=headers)
    assert producer.flush(30) == 0


def test_failing_handler_stops_the_projector_when_configured(
    notes_db: Engine, bootstrap_servers: str, new_topic: Callable[..., str], unique: Callable[[str], str]
) -> None:
    topic = new_topic("notes-stop")
    produce(
        bootstrap_servers,
        topic,
        [envelope("note.taken", "n", {"n": 1}), envelope("note.taken", "n", {"n": 2, "poison": True})],
    )
    config = ProjectorConfig(max_retries=1, retry_backoff=0.01, on_failure="stop")
    projector = noting_projector(topic, unique("notes"), config, [])
    with (
        pytest.raises(HandlerFailedError, match="failed 2 times: poisoned note 2"),
        running(projector, notes_db, bootstrap_servers) as run,
    ):
        wait_until(lambda: not run.thread.is_alive(), timeout=30, what="the projector to stop")
    assert stored_total(notes_db, projector.name) == 1


class Base(DeclarativeBase):
    pass


class OrmNote(Base):
    __tablename__ = "error_test_orm_notes"
    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


def test_orm_session_handlers_write_inside_the_batch_transaction(
    engine: Engine, bootstrap_servers: str, new_topic: Callable[..., str], unique: Callable[[str], str]
) -> None:
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        Base.metadata.create_all(conn)
    topic, dlq = new_topic("orm-notes"), new_topic("orm-notes-dlq")
    produce(
        bootstrap_servers,
        topic,
        [envelope("note.taken", "n", {"n": 1}), envelope("note.failed", "n", {"n": 2})],
    )
    projector = Projector(
        unique("orm"), [topic], config=ProjectorConfig(max_retries=0, dead_letter_topic=dlq)
    )

    @projector.handles("note.taken")
    def take(event: ReceivedEvent, conn: Connection) -> None:
        # commit() of a Session on the runtime's connection commits nothing: the batch does.
        with Session(bind=conn) as session:
            session.add(OrmNote(event_id=event.id))
            session.commit()

    @projector.handles("note.failed")
    def fail(event: ReceivedEvent, conn: Connection) -> None:
        raise RuntimeError("no")

    # The batch holds both: it is rolled back and replayed one by one. Had the session committed the
    # first note in the batch, the replay would hit its primary key and dead-letter it too.
    project(projector, engine, bootstrap_servers, 2)
    with Session(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(OrmNote)) == 1
    assert [dict(m.headers())["dlq_offset"] for m in consume_all(bootstrap_servers, dlq, 1)] == [b"1"]
