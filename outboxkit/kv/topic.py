"""The compacted topic of a KV store: its compaction settings, made or checked at start."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from outboxkit.kafka.admin import ensure_topic, topic_config
from outboxkit.kafka.errors import KafkaUnavailableError, TopicConfigError, TopicNotFoundError


@dataclass(frozen=True)
class CompactionSettings:
    """How Kafka compacts a KV topic (topic settings of the same names, in milliseconds).

    Compaction keeps the last record of every key (a null value, the tombstone, marks a delete),
    but only in closed segments and only for records older than `min_compaction_lag_ms`.
    """

    segment_ms: int = 3_600_000
    """`segment.ms`: a segment is closed (and becomes compactable) at least this often, so old
    values are dropped within about an hour even on a quiet topic. Smaller: more small files."""

    min_compaction_lag_ms: int = 60_000
    """`min.compaction.lag.ms`: a record stays at least this long before compaction may drop it,
    so a reader a minute behind still sees every intermediate value."""

    delete_retention_ms: int = 86_400_000
    """`delete.retention.ms`: how long a tombstone survives after its segment was compacted. A
    reader that was away longer than this cannot trust its local checkpoint (it could miss a
    delete) and rebuilds from the start: make it longer than your readers' longest downtime."""

    min_cleanable_dirty_ratio: float = 0.5
    """`min.cleanable.dirty.ratio`: compact once this share of the log is overwritten values."""

    def topic_config(self) -> dict[str, str]:
        for name in ("segment_ms", "min_compaction_lag_ms", "delete_retention_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)}")
        if not 0 < self.min_cleanable_dirty_ratio <= 1:
            raise ValueError(
                f"min_cleanable_dirty_ratio must be in (0, 1], not {self.min_cleanable_dirty_ratio}"
            )
        return {
            "cleanup.policy": "compact",
            "segment.ms": str(self.segment_ms),
            "min.compaction.lag.ms": str(self.min_compaction_lag_ms),
            "delete.retention.ms": str(self.delete_retention_ms),
            "min.cleanable.dirty.ratio": str(self.min_cleanable_dirty_ratio),
        }


def ensure_compacted_topic(
    admin: AdminClient,
    topic: str,
    *,
    partitions: int,
    compaction: CompactionSettings,
    create: bool = True,
    timeout: float = 30.0,
) -> dict[str, str]:
    """Make `topic` compacted with `compaction` unless it exists; refuse one that exists without
    compaction (TopicConfigError). Returns the topic's effective settings."""
    if create:
        ensure_topic(admin, topic, partitions=partitions, config=compaction.topic_config(), timeout=timeout)
    else:
        refuse_missing(admin, topic, timeout)
    config = topic_config(admin, topic, timeout=timeout)
    refuse_uncompacted(topic, config)
    return config


def refuse_missing(admin: AdminClient, topic: str, timeout: float = 30.0) -> None:
    """TopicNotFoundError unless `topic` exists. Asks for every topic's metadata, not this one's:
    asking an admin client for one topic's metadata makes a broker with auto.create.topics.enable
    create it (with the broker's defaults: not compacted)."""
    try:
        exists = topic in admin.list_topics(timeout=timeout).topics
    except KafkaException as err:
        raise KafkaUnavailableError(f"cannot list Kafka's topics to find {topic!r}: {err}") from err
    if not exists:
        raise TopicNotFoundError(
            f"topic {topic!r} does not exist; make it with a KVWriter (it creates a compacted topic) first"
        )


def refuse_uncompacted(topic: str, config: dict[str, str]) -> None:
    policies = {p.strip() for p in config.get("cleanup.policy", "delete").split(",")}
    if "compact" not in policies:
        raise TopicConfigError(
            f"topic {topic!r} exists with cleanup.policy={config.get('cleanup.policy', 'delete')}, not"
            " compact: a KV store on it would lose keys to retention and never drop old values."
            f" Use another topic, or compact this one (kafka-configs --alter --entity-type topics"
            f" --entity-name {topic} --add-config cleanup.policy=compact)"
        )
    if "delete" in policies:
        raise TopicConfigError(
            f"topic {topic!r} has cleanup.policy={config['cleanup.policy']}: retention would delete"
            " keys that were never overwritten; set cleanup.policy=compact only"
        )
