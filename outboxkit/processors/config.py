"""How a processor runs: transaction size, retries, dead letters, consumer group. Frozen and validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from outbox.errors import ConfigurationError
from outbox.routing import topic_problem

OnFailure = Literal["dead-letter", "stop"]


@dataclass(frozen=True)
class ProcessorConfig:
    """Settings of one processor; every field has a working default."""

    group_id: str | None = None
    """Kafka consumer group; None means `outboxkit-processor-<name>`."""
    transaction_ms: int = 100
    """Transaction size in time. Mode kafka: how long the first input of a transaction waits,
    about, from when it was handled until the commit that makes its outputs visible has returned
    (the transaction commits this long after its first input less the recent commits' duration, a
    moving estimate, and stays open at least half of it). Mode database: the database transaction
    commits this many milliseconds after it began. Outputs become visible to read_committed
    readers only at the commit, so this bounds the added latency; shorter transactions cost more
    commits per second (docs/processors.md, "Transaction size")."""
    transaction_records: int = 1000
    """Transaction size in records: commit once this many input records are in the transaction,
    even before `transaction_ms`."""
    max_retries: int = 3
    """Retries of a failing handler before the input is dead-lettered (or the processor stops)."""
    retry_backoff: float = 0.1
    """Seconds before the first retry; doubles with each retry up to `retry_backoff_max`."""
    retry_backoff_max: float = 2.0
    """Longest wait between two retries, in seconds (keep the sum below the transaction timeout)."""
    on_failure: OnFailure = "dead-letter"
    """After the retries: `dead-letter` the input and go on, or `stop` the processor."""
    dead_letter_topic: str = "{topic}.dlq"
    """Dead-letter topic; `{topic}` is replaced by the input's topic."""
    output_topic: str = "{aggregate_type}"
    """Topic template of output events (outbox.TopicRouter), unless an output names its topic."""
    session_timeout_ms: int = 10_000
    """Kafka consumer session timeout: how soon a dead or paused instance's partitions move on."""
    transaction_timeout_ms: int = 30_000
    """Kafka transaction timeout: the broker aborts a transaction left open longer (a paused or
    dead instance), so readers of the outputs are not held at its last stable offset for longer."""
    instance_id: str | None = None
    """Stable name of this instance: its `transactional.id` (`<name>-<instance_id>`) and its Kafka
    static membership. A restarted instance with the same id fences its predecessor at once. None:
    a random id per process (a restart is then fenced through the consumer group generation)."""
    consumer_settings: Mapping[str, str | int | bool] = field(default_factory=dict)
    """Extra librdkafka consumer settings (the guarantees' settings win)."""
    producer_settings: Mapping[str, str | int | bool] = field(default_factory=dict)
    """Extra librdkafka producer settings (transactional.id and idempotence are fixed)."""

    def __post_init__(self) -> None:
        if self.transaction_ms < 1 or self.transaction_records < 1:
            raise ConfigurationError(
                f"transaction_ms ({self.transaction_ms}) and transaction_records "
                f"({self.transaction_records}) must be at least 1"
            )
        if self.transaction_ms * 2 > self.transaction_timeout_ms:
            raise ConfigurationError(
                f"transaction_ms {self.transaction_ms} is over half the transaction timeout "
                f"{self.transaction_timeout_ms} ms: raise transaction_timeout_ms or make transactions shorter"
            )
        if self.max_retries < 0 or self.retry_backoff < 0 or self.retry_backoff_max < 0:
            raise ConfigurationError("max_retries and the retry backoffs must not be negative")
        if self.on_failure not in ("dead-letter", "stop"):
            raise ConfigurationError(f"on_failure must be 'dead-letter' or 'stop', not {self.on_failure!r}")
        problem = topic_problem(self.dead_letter_topic.replace("{topic}", "t"))
        if problem is not None:
            raise ConfigurationError(
                f"dead_letter_topic {self.dead_letter_topic!r}: with '{{topic}}' replaced, {problem}"
            )

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        return float(min(self.retry_backoff * 2 ** (attempt - 1), self.retry_backoff_max))
