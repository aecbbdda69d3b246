"""A processor's handler runs in a CONSUMER span continuing its input's trace, and its outputs
carry that span's traceparent (real records from the broker, the OpenTelemetry SDK's in-memory
exporter)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Message, TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from outbox.envelope import encode
from outboxkit.kafka import clients, tracing
from outboxkit.processors import Context, PermanentError, Processor, ReceivedEvent
from outboxkit.processors.handling import InputHandler

WRITER_TRACE = "0af7651916cd43dd8448eb211c80319c"
WRITER_SPAN = "b7ad6b7169203331"


def one_record(bootstrap: str, topic: str, event_type: str) -> Message:
    """An event written with the writer's traceparent, as the consumer hands it over."""
    record = encode(
        str(uuid.uuid4()),
        event_type,
        "checkout",
        "2026-12-02T12:00:00.000000Z",
        "order",
        "order-1",
        topic,
        "application/json",
        b'{"total": 12}',
        {},
        f"00-{WRITER_TRACE}-{WRITER_SPAN}-01",
    )
    producer = clients.producer(bootstrap)
    producer.produce(topic, record.value, record.key, headers=record.headers)
    assert producer.flush(30) == 0
    consumer = clients.consumer(bootstrap, f"tracing-{uuid.uuid4().hex[:8]}", {})
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, high - 1)])  # the record just written
        for _ in range(100):
            message = consumer.poll(0.3)
            if message is not None and message.error() is None:
                return message
        raise AssertionError(f"no record read back from {topic}")
    finally:
        consumer.close()


def test_a_handler_runs_in_a_span_continuing_the_inputs_trace_and_outputs_carry_it(
    bootstrap_servers: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic("tracing-in", partitions=1)
    processor = Processor("payments-traced", [topic])

    @processor.handles("order.placed")
    def charge(event: ReceivedEvent, context: Context) -> None:
        context.emit("payment.charged", {"total": event.payload["total"]}, aggregate_type="payment")

    @processor.handles("order.broken")
    def refuse(_event: ReceivedEvent, _context: Context) -> None:
        raise PermanentError("no such card")

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    handler = InputHandler(processor, tracer=provider.get_tracer("test"))

    outcome = handler.handle(one_record(bootstrap_servers, topic, "order.placed"))
    (span,) = exporter.get_finished_spans()
    assert span.name == f"process {topic}" and span.kind is SpanKind.CONSUMER
    assert span.parent is not None and f"{span.parent.span_id:016x}" == WRITER_SPAN
    assert f"{span.context.trace_id:032x}" == WRITER_TRACE
    assert span.attributes is not None and span.attributes["outbox.processor"] == "payments-traced"
    (output,) = outcome.outputs
    assert output.traceparent == f"00-{WRITER_TRACE}-{span.context.span_id:016x}-01"

    failed = handler.handle(one_record(bootstrap_servers, topic, "order.broken"))
    assert isinstance(failed.failure, PermanentError)
    refused = exporter.get_finished_spans()[-1]
    assert refused.status.status_code is StatusCode.ERROR
    assert any(e.name == "exception" for e in refused.events)


def test_without_an_sdk_a_handler_runs_bare_and_outputs_carry_the_inputs_traceparent(
    bootstrap_servers: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic("tracing-bare", partitions=1)
    processor = Processor("payments-bare", [topic])

    @processor.handles("order.placed")
    def charge(_event: ReceivedEvent, context: Context) -> None:
        context.emit("payment.charged", {}, aggregate_type="payment")

    (output,) = InputHandler(processor).handle(one_record(bootstrap_servers, topic, "order.placed")).outputs
    assert output.traceparent == f"00-{WRITER_TRACE}-{WRITER_SPAN}-01"


def test_an_sdk_set_while_running_is_seen_and_a_yes_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """sdk_configured() asks OpenTelemetry at most every SDK_LOOK_SECONDS while no SDK is set
    (asking reads the environment), and keeps a yes: OpenTelemetry sets its provider once."""
    clock = [100.0]
    asked: list[object] = []
    provider: list[object] = [trace.ProxyTracerProvider()]

    def get_tracer_provider() -> object:
        asked.append(provider[0])
        return provider[0]

    monkeypatch.setattr(tracing.trace, "get_tracer_provider", get_tracer_provider)
    probe = tracing._SdkProbe(clock=lambda: clock[0])
    assert not probe() and not probe() and len(asked) == 1
    provider[0] = TracerProvider()  # an SDK set meanwhile
    assert not probe()  # not asked again yet
    clock[0] += tracing.SDK_LOOK_SECONDS
    assert probe() and len(asked) == 2
    clock[0] += 60
    assert probe() and len(asked) == 2
