"""How a projector runs: batching, retries, dead letters, dedupe, consumer group. Frozen and validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from outbox.errors import ConfigurationError
from outbox.routing import topic_problem

OnFailure = Literal["dead-letter", "stop"]


@dataclass(frozen=True)
class ProjectorConfig:
    """Settings of one projector; every field has a working default."""

    group_id: str | None = None
    """Kafka consumer group; None means `outboxkit-projector-<name>`."""
    batch_size: int = 500
    """Most records applied in one database transaction."""
    batch_timeout: float = 0.1
    """Seconds to wait for a batch to fill before applying what arrived."""
    max_retries: int = 3
    """Retries of a failing handler before the record is dead-lettered (or the projector stops)."""
    retry_backoff: float = 0.2
    """Seconds before the first retry; doubles with each retry up to `retry_backoff_max`."""
    retry_backoff_max: float = 5.0
    """Longest wait between two retries, in seconds."""
    on_failure: OnFailure = "dead-letter"
    """After the retries: `dead-letter` the record and go on, or `stop` the projector."""
    dead_letter_topic: str = "{topic}.dlq"
    """Dead-letter topic; `{topic}` is replaced by the record's topic."""
    dedupe_event_ids: bool = True
    """Skip events whose `ce_id` was applied before (republished duplicates arrive at new offsets)."""
    dedupe_retention: timedelta = timedelta(days=7)
    """How long applied event ids are kept for dedupe; older ids are pruned."""
    session_timeout_ms: int = 10_000
    """Kafka consumer session timeout: how soon a dead instance's partitions move to the others."""
    instance_id: str | None = None
    """Kafka static membership (`group.instance.id`): a restarted instance gets its partitions back."""
    consumer_settings: Mapping[str, str | int | bool] = field(default_factory=dict)
    """Extra librdkafka consumer settings (they override the runtime's, except the guarantees')."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigurationError(f"batch_size must be at least 1, not {self.batch_size}")
        if self.batch_timeout < 0 or self.retry_backoff < 0 or self.retry_backoff_max < 0:
            raise ConfigurationError("batch_timeout and retry backoffs must not be negative")
        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries must not be negative, not {self.max_retries}")
        if self.on_failure not in ("dead-letter", "stop"):
            raise ConfigurationError(f"on_failure must be 'dead-letter' or 'stop', not {self.on_failure!r}")
        problem = topic_problem(self.dead_letter_topic.replace("{topic}", "t"))
        if problem is not None:  # a sample topic for {topic}: the template must render legal names
            raise ConfigurationError(
                f"dead_letter_topic {self.dead_letter_topic!r}: with '{{topic}}' replaced, {problem}"
            )

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        return float(min(self.retry_backoff * 2 ** (attempt - 1), self.retry_backoff_max))
