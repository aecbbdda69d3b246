"""Reading a resume's gap from Kafka: the channel's events between the client's positions and the
hub's live positions, in offset order per partition, or the reason why that is not possible.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

from outboxkit.gateway.protocol import Position
from outboxkit.gateway.routing import Routing
from outboxkit.kafka import clients
from outboxkit.kafka.catchup import read_to_end
from outboxkit.kafka.errors import KafkaUnavailableError, UndecodableRecordError
from outboxkit.kafka.records import ReceivedEvent, decode_message
from outboxkit.kafka.settings import KafkaSettings


@dataclass
class Gap:
    """What a replay found: the channel's events in order, or why the gap cannot be replayed."""

    events: list[ReceivedEvent] = field(default_factory=list)
    reason: str | None = None


def read_gap(
    kafka: KafkaSettings | str,
    routing: Routing,
    channel: str,
    starts: Mapping[Position, int],
    targets: Mapping[Position, int],
    *,
    limit: int,
    timeout: float,
) -> Gap:
    """The events on `channel` from `starts` up to `targets` (both per partition); at most `limit`
    of them, else a reason; also a reason when Kafka does not answer, or the reading makes no
    progress, for `timeout` seconds. Blocking: run it in a thread."""
    wanted = {tp: offset for tp, offset in starts.items() if offset < targets[tp]}
    consumer = clients.consumer(kafka, "outbox-gateway-replay", {"enable.partition.eof": True})
    try:
        # also where nothing is to be replayed (a client ahead of this gateway's live stream):
        # records the client has not seen may be gone
        gone = _beyond_retention(consumer, starts, timeout)
        if gone or not wanted:
            return Gap(reason=gone)
        gap = Gap()
        try:
            for records, _progress in read_to_end(
                consumer, wanted, targets={tp: targets[tp] for tp in wanted}, timeout=timeout
            ):
                for record in records:
                    try:
                        event = decode_message(record)
                    except UndecodableRecordError:
                        continue
                    if channel in routing.channels(event):
                        gap.events.append(event)
                if len(gap.events) > limit:
                    return Gap(reason=f"the gap holds more than {limit} events of {channel}: reload")
        except KafkaUnavailableError as err:
            return Gap(reason=f"Kafka did not hand out the gap: {err}")
        # retention may have removed the start while we read (the consumer then skips ahead)
        gone = _beyond_retention(consumer, wanted, timeout)
        return Gap(reason=gone) if gone else gap
    finally:
        consumer.close()


def _beyond_retention(consumer: Consumer, starts: Mapping[Position, int], timeout: float) -> str | None:
    for (topic, partition), offset in sorted(starts.items()):
        try:
            low, _high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
        except Exception as err:  # KafkaException: the broker did not answer
            return f"cannot read where {topic}[{partition}] begins: {err}"
        if offset < low:
            return (
                f"{topic}[{partition}] begins at offset {low} now; offset {offset} is beyond retention:"
                " reload the state and subscribe from its positions"
            )
    return None
