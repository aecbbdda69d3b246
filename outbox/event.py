"""The domain event a service records: what happened, to which aggregate, with which payload."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from uuid_utils.compat import uuid7

from outbox.tracing import current_traceparent


class Tombstone:
    """The type of `TOMBSTONE` (one instance)."""

    _instance: Tombstone | None = None

    def __new__(cls) -> Tombstone:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "TOMBSTONE"

    def __reduce__(self) -> str:
        return "TOMBSTONE"


TOMBSTONE = Tombstone()
"""An event payload that deletes its key: the Kafka record's value is null (a tombstone), which a
compacted topic (a KV store's) takes as "delete this key". Both relays send it the same way: the
row's payload is NULL; the polling relay produces a null value, Debezium's router emits a
tombstone for a NULL payload (route.tombstone.on.empty.payload). The headers are the usual ones."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class Event:
    """One domain event, written to the outbox by `publish()` and put on Kafka by a relay.

    `payload` is what the serializer turns into the Kafka value (a dict, a dataclass or a
    pydantic model for the default JSON serializer). `headers` become extra Kafka headers.
    """

    type: str
    """Event type, e.g. `order.placed` (CloudEvents `ce_type`)."""
    aggregate_type: str
    """Kind of aggregate the event belongs to, e.g. `order`; routes the event to its topic."""
    aggregate_id: str | int | UUID
    """The aggregate's id (ints and UUIDs are rendered as text): the Kafka key and `ce_subject`."""
    payload: Any
    """The event's data; `TOMBSTONE` for a delete on a compacted topic (a null Kafka value)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra Kafka headers (names must not start with `ce_`; values are text)."""
    id: UUID = field(default_factory=uuid7)
    """Unique forever (`ce_id`), the consumers' idempotency key; UUIDv7, so time-sortable."""
    occurred_at: datetime = field(default_factory=_now)
    """When it happened (`ce_time`); must be timezone-aware."""
    source: str | None = None
    """Producing service (`ce_source`); None takes the configured `source`."""
    traceparent: str | None = field(default_factory=current_traceparent)
    """W3C trace context; captured from the current OpenTelemetry span by default."""
    topic: str | None = None
    """Kafka topic for this event only; None routes by the topic template."""
