"""The processor the processors' tests run: `outbox processor run tests.processors.target:from_environment`.

Each numbered input event (tests.consumers.workload) becomes one output event on PROCESSOR_OUTPUT,
keyed like its input, whose payload names the input (key, seq, partition, offset) and the instance
that handled it; an input with `"fail": true` always fails (poison). Mode database also writes one
row per application into `processor_test_applied` in the same transaction.

Environment: PROCESSOR_NAME, PROCESSOR_MODE (kafka | database), PROCESSOR_TOPIC, PROCESSOR_OUTPUT,
PROCESSOR_DLQ, PROCESSOR_INSTANCE, PROCESSOR_TRANSACTION_TIMEOUT_MS, PROCESSOR_SESSION_TIMEOUT_MS.
"""

from __future__ import annotations

import os

import sqlalchemy as sa

from outboxkit.processors import Context, Processor, ProcessorConfig, ReceivedEvent
from tests.consumers.workload import EVENT_TYPE

OUTPUT_TYPE = "conformance.processed"

metadata = sa.MetaData()
applied = sa.Table(
    "processor_test_applied",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("processor", sa.Text, nullable=False, index=True),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("instance", sa.Text, nullable=False),
)


class PoisonedEventError(Exception):
    """The handler's answer to an event marked to fail."""


def build(
    name: str,
    topic: str,
    output: str,
    dead_letter_topic: str,
    *,
    mode: str = "kafka",
    instance: str = "test",
    transaction_timeout_ms: int = 10_000,
    session_timeout_ms: int = 6000,
) -> Processor:
    config = ProcessorConfig(
        dead_letter_topic=dead_letter_topic,
        max_retries=1,
        retry_backoff=0.01,
        session_timeout_ms=session_timeout_ms,
        transaction_timeout_ms=transaction_timeout_ms,
    )
    processor = Processor(name, [topic], mode=mode, config=config)  # type: ignore[arg-type]

    @processor.handles(EVENT_TYPE)
    def transform(event: ReceivedEvent, context: Context) -> None:
        payload = event.payload
        if payload.get("fail"):
            raise PoisonedEventError(f"event {payload['key']}#{payload['seq']} is poisoned: it always fails")
        if context.connection is not None:
            context.connection.execute(
                applied.insert().values(
                    processor=name,
                    event_id=str(event.id),
                    key=event.subject,
                    seq=payload["seq"],
                    partition=event.partition,
                    offset=event.offset,
                    instance=instance,
                )
            )
        context.emit(
            OUTPUT_TYPE,
            {
                "key": payload["key"],
                "seq": payload["seq"],
                "partition": event.partition,
                "offset": event.offset,
                "instance": instance,
                "idempotency_key": context.idempotency_key,
            },
            aggregate_type="conformance",
            topic=output,
        )

    return processor


def from_environment() -> Processor:
    env = os.environ
    return build(
        env["PROCESSOR_NAME"],
        env["PROCESSOR_TOPIC"],
        env["PROCESSOR_OUTPUT"],
        env["PROCESSOR_DLQ"],
        mode=env.get("PROCESSOR_MODE", "kafka"),
        instance=env.get("PROCESSOR_INSTANCE", str(os.getpid())),
        transaction_timeout_ms=int(env.get("PROCESSOR_TRANSACTION_TIMEOUT_MS", "10000")),
        session_timeout_ms=int(env.get("PROCESSOR_SESSION_TIMEOUT_MS", "6000")),
    )
