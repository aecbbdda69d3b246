"""Errors of the relays (all under outbox.errors.OutboxError)."""

from outbox.errors import OutboxError


class RelayError(OutboxError):
    """The relay cannot go on; the message says why and what to do."""


class ProducerFailedError(RelayError):
    """The Kafka producer hit a fatal error (e.g. fenced by a newer relay) and must be replaced."""


class ConnectError(RelayError):
    """Kafka Connect's REST API refused a request or cannot be reached; the message has its answer."""
