"""Topics: create with settings and wait until usable, count partitions, read a topic's settings;
which committed offsets of a group an open transaction holds."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Concatenate, ParamSpec, TypeVar

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from outboxkit.kafka.errors import KafkaUnavailableError, TopicNotFoundError
from outboxkit.kafka.records import Partition

# A future's result(timeout=) raises TimeoutError of its own, not a KafkaException: both mean
# that Kafka did not answer in time.

T = TypeVar("T")
P = ParamSpec("P")
C = TypeVar("C", bound=AdminClient | Consumer)


def _ensure_topic(
    client: AdminClient,
    topic: str,
    *,
    partitions: int,
    config: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> int:
    """Create `topic` with `partitions` and `config` unless it exists (a concurrent creator is
    fine), then wait until every partition has a leader; returns its partition count. An existing
    topic is taken as it is (check its settings with `topic_config`).

    Raises KafkaUnavailableError (transient: try again) when Kafka cannot say in `timeout`.
    """
    try:
        exists = topic in client.list_topics(timeout=timeout).topics
    except KafkaException as err:
        raise KafkaUnavailableError(f"cannot list Kafka's topics to find {topic!r}: {err}") from err
    if not exists:
        future = client.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=-1, config=dict(config or {}))]
        )[topic]
        try:
            future.result(timeout=timeout)
        except Exception as err:
            if "TOPIC_ALREADY_EXISTS" not in str(err):
                raise KafkaUnavailableError(f"cannot create the topic {topic!r}: {err}") from err
    return _wait_for_leaders(client, topic, timeout)


def _wait_for_leaders(client: AdminClient | Consumer, topic: str, timeout: float = 30.0) -> int:
    """The topic's partition count once every partition has a leader.

    Right after CreateTopics a broker may still answer metadata without the new topic's partitions
    (seen in CI: 0 partitions, and a division by zero followed) or without their leaders (reads
    fail with NOT_LEADER_FOR_PARTITION): both are waited out.
    """
    deadline = time.monotonic() + timeout
    reason: object = "no metadata"
    while True:
        try:
            found = client.list_topics(topic=topic, timeout=timeout).topics.get(topic)
        except KafkaException as err:
            found, reason = None, err
        if found is not None:
            reason = found.error or "partitions without a leader"
            if (
                found.error is None
                and found.partitions
                and all(p.error is None and p.leader >= 0 for p in found.partitions.values())
            ):
                return len(found.partitions)
        if time.monotonic() >= deadline:
            raise KafkaUnavailableError(f"the topic {topic!r} is not ready yet ({reason})")
        time.sleep(0.1)


def _partition_counts(
    client: AdminClient | Consumer, topics: Sequence[str], timeout: float = 30.0
) -> dict[str, int]:
    """The live partition count of each topic; TopicNotFoundError when one does not exist."""
    counts: dict[str, int] = {}
    for topic in topics:
        try:
            metadata = client.list_topics(topic, timeout=timeout).topics.get(topic)
        except KafkaException as err:
            raise KafkaUnavailableError(
                f"cannot read the metadata of topic {topic!r}: {err.args[0].str()}; check that Kafka"
                f" runs at the configured brokers and, on a cluster that requires a login, the"
                f" OUTBOX_KAFKA_SECURITY_PROTOCOL and OUTBOX_KAFKA_SASL_... / _SSL_... settings"
            ) from err
        if metadata is None or metadata.error is not None or not metadata.partitions:
            reason = metadata.error if metadata is not None else "no metadata"
            raise TopicNotFoundError(f"topic {topic!r} is not available ({reason}); create it first")
        counts[topic] = len(metadata.partitions)
    return counts


def _topic_config(client: AdminClient, topic: str, timeout: float = 10.0) -> dict[str, str]:
    """The topic's effective settings (broker defaults included), e.g. cleanup.policy."""
    resource = ConfigResource(ResourceType.TOPIC, topic)
    try:
        entries = client.describe_configs([resource])[resource].result(timeout=timeout)
    except (KafkaException, TimeoutError) as err:
        raise KafkaUnavailableError(f"cannot read the settings of topic {topic!r}: {err}") from err
    return {name: entry.value for name, entry in entries.items() if entry.value is not None}


def _broker_config(client: AdminClient, broker: int, timeout: float = 10.0) -> dict[str, str]:
    """A broker's effective settings, e.g. transaction.state.log.replication.factor."""
    resource = ConfigResource(ResourceType.BROKER, str(broker))
    try:
        entries = client.describe_configs([resource])[resource].result(timeout=timeout)
    except (KafkaException, TimeoutError) as err:
        raise KafkaUnavailableError(f"cannot read the settings of broker {broker}: {err}") from err
    return {name: entry.value for name, entry in entries.items() if entry.value is not None}


def _topic_id(client: AdminClient, topic: str, timeout: float = 10.0) -> str:
    """The topic's id (Kafka's topic UUID, as text): a topic deleted and made again under the same
    name has another id, so a local copy of the old one can tell it is stale."""
    try:
        described = client.describe_topics(TopicCollection([topic]))[topic].result(timeout=timeout)
    except (KafkaException, TimeoutError) as err:
        if err.args and getattr(err.args[0], "code", lambda: None)() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise TopicNotFoundError(f"topic {topic!r} does not exist; create it first") from err
        raise KafkaUnavailableError(f"cannot describe the topic {topic!r}: {err}") from err
    return str(described.topic_id)


def _held_offsets(
    client: AdminClient, group: str, partitions: Sequence[Partition], timeout: float = 10.0
) -> list[Partition]:
    """The partitions whose committed offsets in `group` an open transaction holds: it sent offsets
    for them and has not ended (the group coordinator answers UNSTABLE_OFFSET_COMMIT; a
    read_committed member's read of them waits until it ends). Asked once, not waited out."""
    asked = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in partitions])
    try:
        found = client.list_consumer_group_offsets([asked], require_stable=True, request_timeout=timeout)
        answer = found[group].result(timeout=timeout)
    except (KafkaException, TimeoutError) as err:
        raise KafkaUnavailableError(
            f"cannot ask for the committed offsets of group {group!r}: {err}"
        ) from err
    held, failed = [], []
    for tp in answer.topic_partitions or []:
        if tp.error is None:
            continue
        if tp.error.code() == KafkaError.UNSTABLE_OFFSET_COMMIT:
            held.append((tp.topic, tp.partition))
        else:
            failed.append(f"{tp.topic}[{tp.partition}]: {tp.error.str()}")
    if failed:
        raise KafkaUnavailableError(f"cannot read the committed offsets of group {group!r}: {failed}")
    return sorted(held)


def offsets_partition(group: str, partitions: int) -> int:
    """The partition of `__consumer_offsets` (of `partitions`) that keeps `group`'s offsets and
    its transactions' pending ones: Kafka's abs(group.hashCode()) % partitions."""
    units = group.encode("utf-16-be")  # Java's String.hashCode runs over UTF-16 code units
    code = 0
    for i in range(0, len(units), 2):
        code = (31 * code + int.from_bytes(units[i : i + 2], "big")) & 0xFFFFFFFF
    return (code & 0x7FFFFFFF) % partitions


def _offsets_partition_of(client: AdminClient | Consumer, group: str, timeout: float = 10.0) -> int:
    """`offsets_partition` of `group` on this cluster (its `__consumer_offsets` partition count)."""
    counts = _partition_counts(client, ["__consumer_offsets"], timeout)
    return offsets_partition(group, counts["__consumer_offsets"])


def _served(call: Callable[Concatenate[C, P], T]) -> Callable[Concatenate[C, P], T]:
    """`call`, then deliver what an admin client logged meanwhile (outboxkit.kafka.clients)."""

    @functools.wraps(call)
    def serving(client: C, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return call(client, *args, **kwargs)
        finally:
            if isinstance(client, AdminClient):
                client.poll(0)  # a Consumer's poll() would take a record: consume() serves its logs

    return serving


ensure_topic = _served(_ensure_topic)
wait_for_leaders = _served(_wait_for_leaders)
partition_counts = _served(_partition_counts)
topic_config = _served(_topic_config)
broker_config = _served(_broker_config)
topic_id = _served(_topic_id)
held_offsets = _served(_held_offsets)
offsets_partition_of = _served(_offsets_partition_of)
