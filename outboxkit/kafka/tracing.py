"""Consumers' handlers run in OpenTelemetry spans that continue the writer's trace (projectors and
processors alike).

publish() stores the W3C `traceparent` of the writing request with the event and both relays send
it as a header, so a consumer can put its work into the same trace: a handler of one event runs in
a CONSUMER span whose parent is the writer's span; a batch handler runs in one span linked to every
event of the batch that carries trace context (OpenTelemetry's messaging conventions for batches).
A handler's exception is recorded on its span. Without `opentelemetry-api` (the `otel` extra)
handlers run bare; without an SDK configured the spans are the API's no-ops.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from outbox.tracing import parse_traceparent
from outboxkit.kafka.records import ReceivedEvent

try:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
except ImportError:  # pragma: no cover - exercised only without the `otel` extra
    trace = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

INSTRUMENTATION = "outboxkit.projectors"
"""The projectors' instrumentation scope (a component passes its own)."""


def remote_context(traceparent: str | None) -> SpanContext | None:
    """The writer's span context from a `traceparent`, or None when absent or invalid.

    The write side's parser (publish() refuses what it refuses), so both ends agree on what is
    valid. A malformed header, which only a row written by hand can carry, starts a new trace: it
    loses the link to the writer, never the event.
    """
    if trace is None:
        return None
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        return None
    return SpanContext(
        parsed.trace_id, parsed.parent_id, is_remote=True, trace_flags=TraceFlags(parsed.flags)
    )


SDK_LOOK_SECONDS = 1.0
"""How often sdk_configured() asks OpenTelemetry again while no SDK is set: asking reads the
environment (OTEL_PYTHON_TRACER_PROVIDER), 2-3 µs that a processor would pay on every event."""


class _SdkProbe:
    """Whether a tracer provider (an SDK) was set. OpenTelemetry sets the global one once, for
    good: a yes is kept; a no is asked again after SDK_LOOK_SECONDS."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.found = False
        self.asked_at = float("-inf")
        self._clock = clock

    def __call__(self) -> bool:
        if self.found or trace is None:
            return self.found
        now = self._clock()
        if now - self.asked_at >= SDK_LOOK_SECONDS:
            self.asked_at = now
            self.found = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        return self.found


sdk_configured = _SdkProbe()
"""`sdk_configured()`: whether a tracer provider was set (an SDK); without one every span is the
API's no-op. An SDK set while a component runs is seen within SDK_LOOK_SECONDS."""


class HandlerSpans:
    """Spans around one component's handler calls (`component`: "projector", "processor"; `name`:
    the projector's or processor's); `tracer` None: the global provider's."""

    def __init__(
        self,
        name: str,
        group: str,
        tracer: Tracer | None = None,
        *,
        component: str = "projector",
        instrumentation: str = INSTRUMENTATION,
    ) -> None:
        self.name = name
        self.group = group
        self.component = component
        self.tracer = tracer if tracer is not None or trace is None else trace.get_tracer(instrumentation)

    @contextlib.contextmanager
    def one(self, event: ReceivedEvent) -> Iterator[None]:
        """Around a handler of `event`: a child of the writer's span when the event carries one."""
        if self.tracer is None:
            yield
            return
        parent = remote_context(event.traceparent)
        context = trace.set_span_in_context(NonRecordingSpan(parent)) if parent is not None else None
        with self.tracer.start_as_current_span(
            f"process {event.topic}", context=context, kind=SpanKind.CONSUMER
        ) as span:
            if span.is_recording():  # attributes are wasted on a no-op span
                span.set_attributes(
                    {
                        **self._common(event.topic),
                        "messaging.destination.partition.id": str(event.partition),
                        "messaging.kafka.offset": event.offset,
                        "messaging.kafka.message.key": event.key,
                        "messaging.message.id": str(event.id),
                        "cloudevents.event_id": str(event.id),
                        "cloudevents.event_type": event.type,
                        "cloudevents.event_source": event.source,
                        "cloudevents.event_subject": event.subject,
                    }
                )
            yield

    @contextlib.contextmanager
    def batch(self, events: Sequence[ReceivedEvent]) -> Iterator[None]:
        """Around a batch handler: one span, linked to each event's writer span."""
        if self.tracer is None or not events:
            yield
            return
        topics = {event.topic for event in events}
        topic = topics.pop() if len(topics) == 1 else None  # a batch may span a projector's topics
        attributes = {
            **self._common(topic),
            "messaging.batch.message_count": len(events),
            "cloudevents.event_type": events[0].type,
        }
        with self.tracer.start_as_current_span(
            f"process {topic}" if topic else "process", kind=SpanKind.CONSUMER, attributes=attributes
        ) as span:
            if span.is_recording():  # parsing every traceparent is wasted on a no-op span
                for event in events:
                    context = remote_context(event.traceparent)
                    if context is not None:
                        span.add_link(context, {"messaging.message.id": str(event.id)})
            yield

    def _common(self, topic: str | None) -> dict[str, Any]:
        common: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.consumer.group.name": self.group,
            f"outbox.{self.component}": self.name,
        }
        if topic is not None:
            common["messaging.destination.name"] = topic
        return common
