"""Refuse records Kafka would reject for their size before producing them.

A broker fails a whole produce request for one oversized record, so catching it up front keeps the
other events of the batch flowing and names the culprit exactly. The limit is the smaller of the
producer's `message.max.bytes` and the topic's `max.message.bytes` (looked up, cached).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    ResourceType,
)

from outbox.envelope import KafkaRecord

BROKER_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
PRODUCER_DEFAULT_MAX_MESSAGE_BYTES = 1_000_000
CACHE_SECONDS = 300.0


class SizeGuard:
    def __init__(self, bootstrap_servers: str, producer_max_bytes: int | None = None) -> None:
        self.admin = AdminClient({"bootstrap.servers": bootstrap_servers})
        self.producer_max = producer_max_bytes or PRODUCER_DEFAULT_MAX_MESSAGE_BYTES
        self.limits: dict[str, tuple[int, float]] = {}

    def limit(self, topic: str) -> int:
        cached = self.limits.get(topic)
        if cached and time.monotonic() - cached[1] < CACHE_SECONDS:
            return cached[0]
        topic_max = BROKER_DEFAULT_MAX_MESSAGE_BYTES
        try:
            resource = ConfigResource(ResourceType.TOPIC, topic)
            entries = self.admin.describe_configs([resource])[resource].result(timeout=10)
            topic_max = int(entries["max.message.bytes"].value)
        except Exception:  # a topic that does not exist yet: broker default
            pass
        value = min(self.producer_max, topic_max)
        self.limits[topic] = (value, time.monotonic())
        return value

    def split(
        self, batch: Sequence[tuple[int, KafkaRecord]]
    ) -> tuple[list[tuple[int, KafkaRecord]], list[tuple[int, str]]]:
        """(records to publish, [(id, reason)] to quarantine). Later records of a refused record's
        key are left out of both: they stay in the outbox, held behind the quarantined one."""
        ok: list[tuple[int, KafkaRecord]] = []
        refused: list[tuple[int, str]] = []
        held: set[tuple[str, bytes]] = set()
        limits: dict[str, int] = {}  # a batch mostly goes to a few topics
        for event_id, record in batch:
            if (record.topic, record.key) in held:
                continue
            limit = limits.get(record.topic)
            if limit is None:
                limit = limits[record.topic] = self.limit(record.topic)
            size = record.size()
            if size > limit:
                refused.append(
                    (
                        event_id,
                        f"record of {size} bytes exceeds the {limit}-byte limit of "
                        f"topic {record.topic!r}; raise max.message.bytes or shrink it",
                    )
                )
                held.add((record.topic, record.key))
            else:
                ok.append((event_id, record))
        return ok, refused
