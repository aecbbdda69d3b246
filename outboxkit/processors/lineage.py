"""How an output event is tied to the input it came from.

- `causation_id` header: the input's `ce_id` (what caused this event);
- `correlation_id` header: the input's own correlation id, or its `ce_id` when it has none (the
  first event of a flow names the whole flow: an order's checkout, payment and reservation share it);
- `traceparent`: the current span's when a tracer runs the handler, else the input's (the trace goes on);
- `ce_id`: derived from the input's `ce_id`, the processor and the output's place among the
  input's outputs (UUIDv5), so an input handled again after an abort makes outputs with the same
  ids: a reader that deduplicates by `ce_id` sees one event however often the input was handled.

The idempotency key of an input (for calls to third parties, e.g. a payment provider) is derived
the same way: stable for one input event and one processor, different for another processor.
"""

from __future__ import annotations

import uuid

from outbox import Event
from outbox.tracing import current_traceparent
from outboxkit.kafka.records import ReceivedEvent

CAUSATION_ID = "causation_id"
CORRELATION_ID = "correlation_id"
NAMESPACE = uuid.UUID("8f0b3c9e-6a35-4d1e-9a53-1f6f6b2c7d41")
"""UUIDv5 namespace of the processors' derived ids (fixed: changing it changes every derived id)."""


def idempotency_key(processor: str, event: ReceivedEvent) -> str:
    """The same text for the same input event and processor, every time it is handled."""
    return str(uuid.uuid5(NAMESPACE, f"{processor}/{event.id}/key"))


def correlation_of(event: ReceivedEvent) -> str:
    return event.headers.get(CORRELATION_ID) or str(event.id)


def linked(processor: str, source: ReceivedEvent, output: Event, index: int) -> Event:
    """`output` (the `index`-th output of `source`) with its lineage: derived id, causation and
    correlation headers, the trace continued. Headers the handler set itself are kept.

    Built field by field rather than with dataclasses.replace (a third of the cost, on every
    output); tests/processors/test_model.py checks that every field of Event is carried over."""
    cause = str(source.id)
    headers = {CAUSATION_ID: cause, CORRELATION_ID: source.headers.get(CORRELATION_ID) or cause}
    if output.headers:
        headers.update(output.headers)
    return Event(
        type=output.type,
        aggregate_type=output.aggregate_type,
        aggregate_id=output.aggregate_id,
        payload=output.payload,
        headers=headers,
        id=uuid.uuid5(NAMESPACE, f"{processor}/{cause}/{index}"),
        occurred_at=output.occurred_at,
        source=output.source or processor,
        traceparent=output.traceparent or current_traceparent() or source.traceparent,
        topic=output.topic,
    )
