"""Errors of the relays (all under outbox.errors.OutboxError)."""

from outbox.errors import ConfigurationError, OutboxError
from outboxkit.kafka.errors import KafkaUnavailableError


class RelayError(OutboxError):
    """The relay cannot go on; the message says why and what to do."""


class RelayConfigurationError(RelayError, ConfigurationError):
    """A setting the relay cannot run with, found at start (an unknown librdkafka property, a
    database that does not exist): retrying would repeat the failure, so the relay refuses."""


class KafkaTroubleError(RelayError, KafkaUnavailableError):
    """Kafka did not do what the relay asked (unreachable, a timeout, a partition without leader);
    the daemon backs off and tries again, nothing is lost."""


class ProducerFailedError(KafkaTroubleError):
    """The Kafka producer hit a fatal error (e.g. fenced by a newer relay) and must be replaced."""


class ConnectError(RelayError):
    """Kafka Connect's REST API refused a request or cannot be reached; the message has its answer."""


class ForeignProgressError(RelayError):
    """The relay's group is shared with the relays of another outbox: it refuses to go on, since
    acting on their progress would lose this outbox's events."""


class LeaseRefusedError(RelayError):
    """Live relays of the outbox run with settings that conflict with this one's: it takes no shard,
    reports it (/healthz degraded) and asks again every rebalance, taking over once they are gone."""


class ShardCountMismatchError(LeaseRefusedError):
    """A live relay of the outbox splits it into another number of shards: this one takes no shard
    (the two would publish the same aggregates at once) until the counts agree."""


class GroupConflictError(LeaseRefusedError):
    """Live relays of another group publish this outbox table: this one takes no shard (two groups
    would publish the same events, each with its own transactional ids and progress) until they are gone."""


class ConnectorConflictError(RelayError):
    """A connector of that name already streams another database, table or slot in Kafka Connect."""
