"""Dead-letter topic: a record a consumer cannot apply, with its original key, value and headers plus
headers that say why (`dlq_reason`, `dlq_exception`), where it came from and who gave up on it.

Every consumer-side component (projectors, processors) dead-letters through this one publisher, so
a dead letter looks the same whoever wrote it: `dlq_consumer` names the consumer and `dlq_<kind>`
(e.g. `dlq_projector`) repeats it under the component's kind.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaException, Message, Producer

from outboxkit.kafka import clients
from outboxkit.kafka.errors import DeadLetterError
from outboxkit.kafka.records import header_pairs
from outboxkit.kafka.settings import KafkaSettings

REASON_LIMIT = 4000
"""Longest `dlq_reason` header, in characters."""


def reason_headers(
    message: Message, consumer: str, error: BaseException, attempts: int, kind: str = "projector"
) -> dict[str, str]:
    """The `dlq_...` headers describing the failure, as text (also for dead letters written
    through the outbox, which carries text headers only)."""
    return {
        "dlq_reason": f"{type(error).__name__}: {error}"[:REASON_LIMIT],
        "dlq_exception": f"{type(error).__module__}.{type(error).__qualname__}",
        "dlq_topic": message.topic() or "",
        "dlq_partition": str(message.partition()),
        "dlq_offset": str(message.offset()),
        "dlq_consumer": consumer,
        f"dlq_{kind}": consumer,
        "dlq_attempts": str(attempts),
        "dlq_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def dead_letter_headers(
    message: Message, consumer: str, error: BaseException, attempts: int, kind: str = "projector"
) -> list[tuple[str, str | bytes | None]]:
    """The original headers followed by the `dlq_...` headers describing the failure."""
    original = header_pairs(message.headers())
    extra = reason_headers(message, consumer, error, attempts, kind)
    return [*original, *((k, v.encode()) for k, v in extra.items())]


class DeadLetterPublisher:
    """Publishes dead letters synchronously: `send` returns once Kafka acknowledged the record."""

    def __init__(
        self,
        kafka: KafkaSettings | str,
        consumer: str,
        topic_template: str,
        *,
        kind: str = "projector",
        timeout: float = 30.0,
    ):
        """`consumer` names who gives up on records; `topic_template` is the dead-letter topic,
        `{topic}` replaced by the record's topic."""
        self._kafka = KafkaSettings.of(kafka)
        # Give up when `send` does, so that a stopped consumer leaves nothing queued behind.
        self._settings: dict[str, Any] = {"message.timeout.ms": int(timeout * 1000)}
        self._consumer = consumer
        self._kind = kind
        self._template = topic_template
        self._timeout = timeout
        self._producer: Producer | None = None

    def topic_for(self, topic: str) -> str:
        return self._template.replace("{topic}", topic)

    def send(self, message: Message, error: BaseException, attempts: int) -> str:
        """Publish `message` to its dead-letter topic; returns the topic. Raises DeadLetterError."""
        if self._producer is None:
            self._producer = clients.producer(self._kafka, self._settings)
        topic = self.topic_for(message.topic() or "")
        failures: list[str] = []
        try:
            self._producer.produce(
                topic,
                key=message.key(),
                value=message.value(),
                headers=dead_letter_headers(message, self._consumer, error, attempts, self._kind),
                on_delivery=lambda err, _msg: failures.append(str(err)) if err else None,
            )
            left = self._producer.flush(self._timeout)
        except (KafkaException, BufferError) as err:
            raise DeadLetterError(f"cannot publish to dead-letter topic {topic!r}: {err}") from err
        if left or failures:
            raise DeadLetterError(
                f"dead-letter topic {topic!r} did not acknowledge the record: {failures or 'timeout'}; "
                "check that the topic exists or that the broker creates topics"
            )
        return topic

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self._timeout)
            self._producer = None
