"""The one exception hierarchy of outboxkit. Messages say what was wrong and what to do."""


class OutboxError(Exception):
    """Root of every error outboxkit raises on purpose."""


class ConfigurationError(OutboxError, ValueError):
    """A setting is missing or invalid."""


class InvalidEventError(OutboxError, ValueError):
    """An event lacks a required field or has a field the envelope cannot carry."""


class InvalidHeaderError(InvalidEventError):
    """A user header has a bad name or value, or collides with an envelope header."""


class SerializationError(InvalidEventError):
    """The serializer could not turn the payload into bytes."""


class EventTooLargeError(InvalidEventError):
    """The Kafka record (key, value and headers) would exceed the configured maximum."""


class EnvelopeError(OutboxError, ValueError):
    """A Kafka record does not carry outboxkit's CloudEvents envelope."""


class UnsupportedTargetError(OutboxError, TypeError):
    """publish() was given something that is not a SQLAlchemy Session, AsyncSession or Connection."""


class StorageError(OutboxError):
    """The database refused an outbox write; the cause is chained (`raise ... from`)."""


class MigrationError(OutboxError):
    """The outbox schema could not be found or migrated."""
