"""Errors of the Kafka layer (all under outbox.errors.OutboxError)."""

from outbox.errors import OutboxError


class KafkaUnavailableError(OutboxError):
    """Kafka did not do what was asked in time (unreachable, a timeout, a partition without a leader
    yet): transient, so a daemon backs off and tries again; nothing is lost."""


class StopRequestedError(OutboxError):
    """The component was asked to stop while it waited on Kafka: what it waited for is given up
    (nothing was taken or changed), and the component goes on to stop."""


class TopicNotFoundError(OutboxError):
    """A topic a component reads does not exist (or has no partitions): create it first."""


class TopicConfigError(OutboxError):
    """A topic exists with settings a component cannot work with (e.g. not compacted)."""


class UndecodableRecordError(OutboxError):
    """A Kafka record is not an outboxkit event (envelope or payload): it is dead-lettered, never
    retried (a consumer must never crash-loop on data)."""


class DeadLetterError(OutboxError):
    """A record could not be written to its dead-letter topic; the consumer stops rather than lose it."""
