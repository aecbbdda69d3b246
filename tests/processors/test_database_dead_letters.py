"""Mode database: a dead letter is written through the outbox in the transaction that moves the
offsets past its input (DESIGN.md, "Processors"), so a batch rolled back after a poison record
leaves no dead letter anywhere, and a committed one leaves exactly one per poison record."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from confluent_kafka import Producer
from sqlalchemy import create_engine, pool

from outbox import Event, Outbox, TopicRouter, migrations
from outbox.envelope import to_kafka
from outbox.schema import TABLE
from outboxkit.processors import (
    Context,
    HandlerFailedError,
    PermanentError,
    Processor,
    ProcessorConfig,
    ReceivedEvent,
)
from outboxkit.processors.database_mode import DatabaseProcessorRunner, load_offsets
from outboxkit.processors.errors import ProcessorError
from outboxkit.processors.metrics import ProcessorMetrics
from tests.processors.conftest import wait_for
from tests.services import read_all

EVENT = "order.placed"


def produce(bootstrap: str, topic: str, payloads: list[dict[str, object]]) -> None:
    """One record per payload, all on partition 0 and in one flush, so one consume gets them all."""
    outbox = Outbox(router=TopicRouter(topic))
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for number, payload in enumerate(payloads):
        event = Event(type=EVENT, aggregate_type="order", aggregate_id=f"o-{number}", payload=payload)
        record = to_kafka(outbox.prepare(event))
        producer.produce(topic, key=record.key, value=record.value, headers=record.headers, partition=0)
    assert producer.flush(30) == 0


def build(name: str, topic: str, dlq: str, *, on_failure: str = "dead-letter") -> Processor:
    config = ProcessorConfig(
        dead_letter_topic=dlq,
        max_retries=0,
        retry_backoff=0,
        on_failure=on_failure,  # type: ignore[arg-type]
        transaction_records=100,
        transaction_ms=1000,
        session_timeout_ms=6000,
    )
    processor = Processor(name, [topic], mode="database", config=config)

    @processor.handles(EVENT)
    def handle(event: ReceivedEvent, context: Context) -> None:
        if event.payload.get("poison"):
            raise PermanentError(f"{event.subject} is poison")
        if event.payload.get("fails"):
            raise RuntimeError(f"{event.subject} fails")
        context.emit("order.seen", {"order": event.subject}, aggregate_type="seen")

    return processor


def dead_letter_rows(engine: sa.Engine, dlq: str) -> list[sa.Row[tuple[object, ...]]]:
    query = sa.text(f"SELECT aggregate_id, payload, headers FROM {TABLE} WHERE topic = :t ORDER BY id")
    with engine.connect() as conn:
        return list(conn.execute(query, {"t": dlq}))


def dead_lettered(metrics: ProcessorMetrics) -> float:
    return sum(
        sample.value
        for metric in metrics.dead_lettered.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def test_a_batch_rolled_back_after_poison_leaves_no_dead_letter_and_a_committed_one_leaves_one_each(
    bootstrap_servers: str,
    new_topic: Callable[..., str],
    new_database: Callable[[], str],
    unique: Callable[[str], str],
) -> None:
    url = new_database()
    migrations.upgrade(url)
    engine = create_engine(migrations.sqlalchemy_url(url), poolclass=pool.NullPool)
    topic, dlq, name = new_topic("dlq-in"), new_topic("dlq-out"), unique("dlq")
    poison = {"poison": True}
    produce(bootstrap_servers, topic, [{}, poison, {}, poison, poison, {"fails": True}])

    # on_failure=stop: the last record stops the processor, and its whole batch is rolled back,
    # after three poison records were dead-lettered in it.
    metrics = ProcessorMetrics()
    runner = DatabaseProcessorRunner(
        build(name, topic, dlq, on_failure="stop"), engine, bootstrap_servers, metrics=metrics
    )
    with pytest.raises(HandlerFailedError):
        runner.run(threading.Event())
    assert dead_lettered(metrics) == 0, "dead letters of a rolled-back batch were counted"
    with engine.connect() as conn:
        assert load_offsets(conn, name) == {(topic, 0): 0}, "one batch, rolled back as a whole"
    assert dead_letter_rows(engine, dlq) == [], "a dead letter of the rolled-back batch is in the outbox"
    assert read_all(bootstrap_servers, dlq) == [], "a dead letter of the rolled-back batch was published"

    # The same records with on_failure=dead-letter: one commit, one dead letter per poison record
    # (the last record is dead-lettered too now).
    stop = threading.Event()
    metrics = ProcessorMetrics()
    runner = DatabaseProcessorRunner(build(name, topic, dlq), engine, bootstrap_servers, metrics=metrics)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            runner.run(stop)
        except ProcessorError as err:  # pragma: no cover - shown by the assertion below
            errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        with engine.connect() as conn:
            wait_for(lambda: load_offsets(conn, name).get((topic, 0)) == 6, "the batch to commit", 60)
    finally:
        stop.set()
        thread.join(30)
    assert errors == []
    assert dead_lettered(metrics) == 4, "counted once each, after the commit"
    rows = dead_letter_rows(engine, dlq)
    assert [r.aggregate_id for r in rows] == ["o-1", "o-3", "o-4", "o-5"]
    assert rows[0].headers["dlq_exception"] == "outboxkit.processors.errors.PermanentError"
    assert rows[-1].headers["dlq_exception"] == "builtins.RuntimeError"
    assert read_all(bootstrap_servers, dlq) == [], "dead letters go through the outbox (a relay sends them)"
