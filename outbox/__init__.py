"""outboxkit's write side: events, their envelope, and publishing them in the caller's transaction."""

from outbox.aggregate import AggregateRoot
from outbox.config import OutboxSettings, Retention
from outbox.errors import (
    ConfigurationError,
    EventTooLargeError,
    InvalidEventError,
    InvalidHeaderError,
    MigrationError,
    OutboxError,
    SerializationError,
    StorageError,
    UnsupportedTargetError,
)
from outbox.event import TOMBSTONE, Event
from outbox.publisher import Outbox, default_outbox, publish, publish_many
from outbox.routing import TopicRouter
from outbox.serialization import BytesSerializer, JsonSerializer, Serializer

__all__ = [
    "TOMBSTONE",
    "AggregateRoot",
    "BytesSerializer",
    "ConfigurationError",
    "Event",
    "EventTooLargeError",
    "InvalidEventError",
    "InvalidHeaderError",
    "JsonSerializer",
    "MigrationError",
    "Outbox",
    "OutboxError",
    "OutboxSettings",
    "Retention",
    "SerializationError",
    "Serializer",
    "StorageError",
    "TopicRouter",
    "UnsupportedTargetError",
    "default_outbox",
    "publish",
    "publish_many",
]
