"""The processor model without a broker: handlers, outputs and their lineage, retries, config."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Message

from outbox import Event, Outbox, TopicRouter
from outbox.envelope import to_kafka
from outbox.errors import ConfigurationError
from outboxkit.kafka.records import decode_message
from outboxkit.processors import (
    CAUSATION_ID,
    CORRELATION_ID,
    Context,
    PermanentError,
    Processor,
    ProcessorConfig,
)
from outboxkit.processors.handling import InputHandler
from outboxkit.processors.lineage import NAMESPACE, idempotency_key, linked

TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class FakeRecord:
    """What InputHandler reads of a confluent-kafka Message (a value object, not a broker)."""

    def __init__(self, value: bytes, headers: list[tuple[str, bytes]], offset: int = 7) -> None:
        self._value, self._headers, self._offset = value, headers, offset

    def topic(self) -> str:
        return "orders"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"o-1"

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers


def record(payload: Any, **headers: str) -> Message:
    event = Event(
        type="order.placed",
        aggregate_type="orders",
        aggregate_id="o-1",
        payload=payload,
        traceparent=TRACE,
        headers=headers,
    )
    kafka = to_kafka(Outbox(router=TopicRouter()).prepare(event))
    return FakeRecord(kafka.value, kafka.headers)  # type: ignore[return-value]


def payments(**config: Any) -> Processor:
    processor = Processor("payments", ["orders"], config=ProcessorConfig(retry_backoff=0, **config))

    @processor.handles("order.placed")
    def charge(event: Any, context: Context) -> Event:
        if event.payload.get("declined"):
            raise PermanentError("card declined")
        context.emit("payment.audit", {"key": context.idempotency_key}, aggregate_type="audit")
        return Event(type="payment.charged", aggregate_type="payments", aggregate_id="o-1", payload={})

    return processor


def test_outputs_name_their_input_and_continue_its_trace() -> None:
    message = record({"amount": 5})
    outcome = InputHandler(payments()).handle(message)
    assert outcome.failure is None
    audit, charged = outcome.outputs
    source = message.headers()
    ce_id = dict(source)["ce_id"].decode()
    for output in (audit, charged):
        assert output.headers[CAUSATION_ID] == ce_id
        assert output.headers[CORRELATION_ID] == ce_id  # the first event of the flow names it
        assert output.traceparent == TRACE
        assert output.source == "payments"
    assert audit.aggregate_id == "o-1", "emit keys outputs like their input"
    again = InputHandler(payments()).handle(message)
    assert [o.id for o in again.outputs] == [o.id for o in outcome.outputs], "ids derived from the input"
    assert audit.id != charged.id


def test_a_correlation_id_is_passed_on_and_the_idempotency_key_is_stable_per_processor() -> None:
    message = record({"amount": 5}, correlation_id="flow-9")
    outcome = InputHandler(payments()).handle(message)
    assert {o.headers[CORRELATION_ID] for o in outcome.outputs} == {"flow-9"}
    key = outcome.outputs[0].payload["key"]
    assert key == InputHandler(payments()).handle(message).outputs[0].payload["key"]
    event = decode_message(message)
    assert idempotency_key("payments", event) == key != idempotency_key("inventory", event)
    uuid.UUID(key)


def test_transient_errors_are_retried_with_back_off_and_a_permanent_one_is_not() -> None:
    calls: list[int] = []
    waits: list[float] = []
    processor = Processor("flaky", ["orders"], config=ProcessorConfig(max_retries=3, retry_backoff=0.1))

    @processor.handles("order.placed")
    def handle(event: Any, context: Context) -> None:
        calls.append(1)
        context.emit("dropped", {}, aggregate_type="x")  # outputs of a failed attempt are dropped
        if len(calls) < 3:
            raise ConnectionError("provider unreachable")

    outcome = InputHandler(processor, sleep=waits.append).handle(record({}))
    assert outcome.failure is None and len(calls) == 3 and waits == [0.1, 0.2]
    assert len(outcome.outputs) == 1, "only the successful attempt's output"

    declined = InputHandler(payments(), sleep=waits.append).handle(record({"declined": True}))
    assert isinstance(declined.failure, PermanentError) and declined.attempts == 1


def test_retries_run_out_into_a_dead_letter_and_an_undecodable_record_is_one_at_once() -> None:
    processor = Processor("broken", ["orders"], config=ProcessorConfig(max_retries=2, retry_backoff=0))
    processor.handles("order.placed")(lambda event, context: 1 / 0)
    outcome = InputHandler(processor, sleep=lambda _: None).handle(record({}))
    assert isinstance(outcome.failure, ZeroDivisionError) and outcome.attempts == 3
    bad = InputHandler(processor).handle(FakeRecord(b"{}", [("ce_type", b"x")]))  # type: ignore[arg-type]
    assert "not an outboxkit event" in str(bad.failure) and bad.attempts == 1


def test_config_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="transaction timeout"):
        ProcessorConfig(transaction_ms=20_000, transaction_timeout_ms=30_000)
    with pytest.raises(ConfigurationError, match="at least 1"):
        ProcessorConfig(transaction_records=0)
    with pytest.raises(ConfigurationError, match="mode"):
        Processor("p", ["t"], mode="both")  # type: ignore[arg-type]


def test_load_processor_by_import_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from outboxkit.processors import load_processor
    from outboxkit.processors.errors import ProcessorNotFoundError

    env = {"PROCESSOR_NAME": "p", "PROCESSOR_TOPIC": "t", "PROCESSOR_OUTPUT": "o", "PROCESSOR_DLQ": "d"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    found = load_processor("tests.processors.target:from_environment")
    assert found.name == "p" and found.topics == ("t",) and found.mode == "kafka"
    with pytest.raises(ProcessorNotFoundError, match=r"expected 'package\.module:attribute'"):
        load_processor("tests.processors.target")
    with pytest.raises(ProcessorNotFoundError, match="cannot import"):
        load_processor("tests.nowhere:processor")
    with pytest.raises(ProcessorNotFoundError, match="not a Processor"):
        load_processor("tests.processors.target:OUTPUT_TYPE")


def test_lineage_carries_every_field_of_the_output_over() -> None:
    """linked() builds the output field by field: a field added to Event must be carried too."""
    output = Event(
        type="t.done",
        aggregate_type="things",
        aggregate_id=42,
        payload={"p": 1},
        headers={"mine": "kept", CORRELATION_ID: "set-by-the-handler"},
        occurred_at=datetime(2026, 1, 2, tzinfo=UTC),
        source="its-own-source",
        traceparent=TRACE,
        topic="elsewhere",
    )
    event = decode_message(record({"amount": 5}))
    made = linked("payments", event, output, 3)
    changed = {"id", "headers"}
    for field in dataclasses.fields(Event):
        if field.name not in changed:
            assert getattr(made, field.name) == getattr(output, field.name), field.name
    assert made.headers == {CAUSATION_ID: str(event.id), CORRELATION_ID: "set-by-the-handler", "mine": "kept"}
    assert made.id == uuid.uuid5(NAMESPACE, f"payments/{event.id}/3")
