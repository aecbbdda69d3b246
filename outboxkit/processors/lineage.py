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

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

from outbox import Event
from outboxkit.kafka.records import ReceivedEvent

CAUSATION_ID = "causation_id"
CORRELATION_ID = "correlation_id"
NAMESPACE = uuid.UUID("8f0b3c9e-6a35-4d1e-9a53-1f6f6b2c7d41")
"""UUIDv5 namespace of the processors' derived ids (fixed: changing it changes every derived id)."""


# A UUIDv5 is sha1(namespace + name) cut to 16 bytes, with its version (bits 76-79: 5) and its
# variant (bits 62-63: 0b10) set (RFC 9562, 5.5): what uuid.uuid5 does, at half its cost.
_NAMESPACE_BYTES = NAMESPACE.bytes
_UUID5_KEEP = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_UUID5_BITS = (5 << 76) | (0x2 << 62)
_new = object.__new__
_set = object.__setattr__


def derived_id(processor: str, cause: str, index: int | str) -> uuid.UUID:
    """`uuid.uuid5(NAMESPACE, f"{processor}/{cause}/{index}")`: the id derived from an input."""
    name = f"{processor}/{cause}/{index}".encode()
    digest = hashlib.sha1(_NAMESPACE_BYTES + name).digest()  # a UUIDv5 is sha1 by definition
    # The two slots UUID.__init__ sets, without its checks of arguments we do not pass (a third
    # of this function's cost, on every output); tests compare the result with uuid.uuid5's.
    made = _new(uuid.UUID)
    _set(made, "int", (int.from_bytes(digest[:16]) & _UUID5_KEEP) | _UUID5_BITS)
    _set(made, "is_safe", uuid.SafeUUID.unknown)
    return made


def idempotency_key(processor: str, event: ReceivedEvent) -> str:
    """The same text for the same input event and processor, every time it is handled."""
    return str(derived_id(processor, event.id_text, "key"))


def correlation_of(event: ReceivedEvent) -> str:
    return event.headers.get(CORRELATION_ID) or event.id_text


def lineage_headers(source: ReceivedEvent, own: Mapping[str, str] | None) -> dict[str, str]:
    """The causation and correlation headers of an output of `source`, under the handler's own
    `own` headers (which may set either)."""
    headers = {CAUSATION_ID: source.id_text, CORRELATION_ID: correlation_of(source)}
    if own:
        headers.update(own)
    return headers


def linked(
    processor: str, source: ReceivedEvent, output: Event, index: int, parent: str | None = None
) -> Event:
    """`output` (the `index`-th output of `source`) with its lineage: derived id, causation and
    correlation headers, the trace continued from `parent` (the traceparent of the span the
    handler ran in, if any), else the input's. Fields the handler set itself are kept.

    Every field is copied by hand (tests/processors/test_model.py checks that each field of
    Event is carried over), into an Event made by assembled(): on every returned output."""
    return assembled(
        {
            "type": output.type,
            "aggregate_type": output.aggregate_type,
            "aggregate_id": output.aggregate_id,
            "payload": output.payload,
            "headers": lineage_headers(source, output.headers),
            "id": derived_id(processor, source.id_text, index),
            "occurred_at": output.occurred_at,
            "source": output.source or processor,
            "traceparent": output.traceparent or parent or source.traceparent,
            "topic": output.topic,
        }
    )


def assembled(fields: dict[str, Any]) -> Event:
    """`Event(**fields)` for a dict of every field of Event, without its __init__: a frozen
    dataclass's sets each field through object.__setattr__ (3 µs for Event's ten, on every
    output). Event's __init__ only assigns (no __post_init__), so the event is the same; no
    default applies, and tests check that every field is given."""
    event = object.__new__(Event)
    object.__setattr__(event, "__dict__", fields)
    return event
