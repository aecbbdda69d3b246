"""Refuse, before producing, the records Kafka would refuse for good; hold their aggregates.

Catching them up front keeps the rest of the batch flowing, names the culprit exactly, and keeps
order: no later event of a refused event's aggregate is produced in the same batch, whatever its
topic (an event may override its topic, outbox/routing.py), and the quarantine holds the rest.

A record is refused when its row is malformed (relay/rows.py), its topic name is one Kafka refuses,
its topic does not exist and will not be created, or it is larger than the smaller of the
producer's `message.max.bytes` and the topic's `max.message.bytes`.

A missing topic is asked about as the producer would ask: a metadata request that may auto-create
it when the producer may (`allow.auto.create.topics`, true by default) and the broker does
(`auto.create.topics.enable`). The request that creates a topic is still answered "unknown topic",
so when creating is allowed the question is asked again for a few seconds. An answer that stays
"unknown topic" means that producing would only time out, again and again. Any other answer (no
leader yet, Kafka unreachable) is transient: the record is produced and the publisher retries it
after a back-off. Existence and limits are cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ConfigResource, ResourceType  # type: ignore[attr-defined]

from outbox.envelope import KafkaRecord
from outbox.errors import InvalidEventError
from outbox.routing import check_topic
from outboxkit.kafka import clients
from outboxkit.kafka.settings import KafkaSettings
from relay.rows import Aggregate, Fetched, Malformed

BROKER_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
PRODUCER_DEFAULT_MAX_MESSAGE_BYTES = 1_000_000
CACHE_SECONDS = 300.0
LOOKUP_TIMEOUT = 5.0
UNREACHABLE_SECONDS = 5.0
CREATION_WAITS = (0.1, 0.2, 0.4, 0.8, 1.6)  # seconds before asking again about an unknown topic
REQUEUE = "then `outbox relay quarantine requeue CE_ID` (or `discard CE_ID` to drop it)"


class Preflight:
    """The checks of one relay; `split(batch)` once per batch. Not thread-safe (one relay loop)."""

    def __init__(self, kafka: KafkaSettings | str, producer: Mapping[str, str] | None = None) -> None:
        producer = producer or {}
        # The same auto-create permission as the relay's producer: see the module docstring.
        allow = producer.get("allow.auto.create.topics", "true")
        self.admin = clients.admin(
            KafkaSettings.of(kafka).with_connection(producer), {"allow.auto.create.topics": allow}
        )
        self.may_create = allow.lower() == "true"
        self.producer_max = int(producer.get("message.max.bytes") or PRODUCER_DEFAULT_MAX_MESSAGE_BYTES)
        self.limits: dict[str, tuple[int, float]] = {}
        self.existing: dict[str, float] = {}  # topic -> when metadata last showed it
        self.unreachable_until = 0.0

    def split(self, batch: Sequence[Fetched]) -> tuple[list[tuple[int, KafkaRecord]], list[tuple[int, str]]]:
        """(records to publish, [(id, reason)] to quarantine): see `split`."""
        return split(batch, self.check_topic)

    def check_topic(self, topic: str) -> str | int:
        """Why records for `topic` are refused, or their size limit."""
        self.admin.poll(0)  # deliver what the admin client logged (outboxkit.kafka.clients)
        try:
            check_topic(topic)
        except InvalidEventError as err:
            return f"{err}; correct the topic in outbox_quarantine, {REQUEUE}"
        if not self.exists(topic):
            return (
                f"topic {topic!r} does not exist and may not be created automatically (auto-create"
                f" is off in the broker or the relay's producer): create the topic, {REQUEUE}"
            )
        return self.limit(topic)

    def exists(self, topic: str) -> bool:
        """False only when Kafka says the topic is unknown (and did not create it on the spot)."""
        now = time.monotonic()
        seen = self.existing.get(topic)
        if (seen and now - seen < CACHE_SECONDS) or now < self.unreachable_until:
            return True
        # A broker that auto-creates answers the creating request "unknown topic" all the same:
        # only an answer that stays so after the creation had time to finish is a refusal.
        waits = CREATION_WAITS if self.may_create else ()
        for wait in (0.0, *waits):
            time.sleep(wait)
            try:
                metadata = self.admin.list_topics(topic=topic, timeout=LOOKUP_TIMEOUT)
            except KafkaException:
                # Kafka unreachable: producing will find out and back off; don't ask again per topic.
                self.unreachable_until = time.monotonic() + UNREACHABLE_SECONDS
                return True
            found = metadata.topics.get(topic)
            error = found.error if found is not None else None
            if error is None or error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                if found is not None and error is None:
                    self.existing[topic] = time.monotonic()
                return True  # also LEADER_NOT_AVAILABLE and the like: transient
        return False

    def limit(self, topic: str) -> int:
        cached = self.limits.get(topic)
        if cached and time.monotonic() - cached[1] < CACHE_SECONDS:
            return cached[0]
        guess = min(self.producer_max, BROKER_DEFAULT_MAX_MESSAGE_BYTES)
        if time.monotonic() < self.unreachable_until:
            # Kafka did not answer a moment ago: asking would only wait out the time-out again
            # (10 s a batch, before the relay could report the outage). The guess is not kept: a
            # record it lets through that the topic refuses fails when produced and is isolated.
            return guess
        topic_max = BROKER_DEFAULT_MAX_MESSAGE_BYTES
        try:
            resource = ConfigResource(ResourceType.TOPIC, topic)
            entries = self.admin.describe_configs([resource])[resource].result(timeout=10)
            topic_max = int(entries["max.message.bytes"].value)
        except Exception:  # a topic that is being created: broker default
            pass
        value = min(self.producer_max, topic_max)
        self.limits[topic] = (value, time.monotonic())
        return value


def split(
    batch: Sequence[Fetched], check_topic: Callable[[str], str | int]
) -> tuple[list[tuple[int, KafkaRecord]], list[tuple[int, str]]]:
    """(records to publish, [(id, reason)] to quarantine), both in batch order. A row is refused
    when it is malformed, when `check_topic(topic)` says why its topic is refused, or when it is
    larger than the topic's limit that `check_topic` returns; it is asked once per topic and
    batch. Later rows of a refused row's aggregate are left out of both: they stay in the
    outbox, held behind the quarantined one."""
    ok: list[tuple[int, KafkaRecord]] = []
    refused: list[tuple[int, str]] = []
    held: set[Aggregate] = set()
    topics: dict[str, str | int] = {}  # a batch mostly goes to a few topics: refusal or limit
    for event_id, aggregate, record in batch:
        if aggregate in held:
            continue
        if isinstance(record, Malformed):
            reason = record.reason
        else:
            verdict = topics.get(record.topic)
            if verdict is None:
                verdict = topics[record.topic] = check_topic(record.topic)
            refusal = verdict if isinstance(verdict, str) else too_large(record, verdict)
            if refusal is None:
                ok.append((event_id, record))
                continue
            reason = refusal
        refused.append((event_id, reason))
        held.add(aggregate)
    return ok, refused


def too_large(record: KafkaRecord, limit: int) -> str | None:
    size = record.size()
    if size <= limit:
        return None
    return (
        f"record of {size} bytes exceeds the {limit}-byte limit of "
        f"topic {record.topic!r}; raise max.message.bytes or shrink it"
    )
