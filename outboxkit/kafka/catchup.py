"""Reading partitions up to the end they had when reading began: marker-safe catch-up.

"Caught up" means the consumer's *position* on every partition has reached the end offset read
at the start (DESIGN.md). Never "last record's offset + 1 == end": on a transactional topic the
last offset of a partition is a commit or abort marker that no consumer ever receives, and
compaction leaves gaps, so a reader waiting for a record at `end - 1` would wait forever.

The end offsets are the partitions' high watermarks as a read_committed consumer sees them (its
last stable offset): records of a transaction still open past them are not waited for. A
partition counts as done when the consumer's position reaches its end, or when the consumer
reports the end of the partition (`enable.partition.eof`) at or beyond it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from outboxkit.kafka.errors import KafkaUnavailableError

log = logging.getLogger(__name__)

Partition = tuple[str, int]


def end_offsets(
    consumer: Consumer, partitions: Sequence[Partition], timeout: float = 30.0
) -> dict[Partition, int]:
    """Each partition's end (high watermark; last stable offset for read_committed), asking again
    until `timeout`: a partition created moments ago may not have a leader yet."""
    return {tp: high for tp, (_low, high) in watermarks(consumer, partitions, timeout).items()}


def watermarks(
    consumer: Consumer, partitions: Sequence[Partition], timeout: float = 30.0
) -> dict[Partition, tuple[int, int]]:
    """Each partition's (log start offset, end offset): the first offset still in the log (older
    ones were deleted by retention or DeleteRecords; compaction never moves it) and the end as in
    `end_offsets`, asking again until `timeout`."""
    found: dict[Partition, tuple[int, int]] = {}
    deadline = time.monotonic() + timeout
    for topic, partition in partitions:
        while True:
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=max(deadline - time.monotonic(), 1.0)
                )
                found[(topic, partition)] = (int(low), int(high))
                break
            except KafkaException as err:
                if time.monotonic() >= deadline:
                    raise KafkaUnavailableError(
                        f"cannot read the end of {topic}[{partition}]: {err}"
                    ) from err
                time.sleep(0.1)
    return found


class CatchUp:
    """Whether a consumer has read its partitions up to `targets`; fed with what it consumed.

    Start positions may lie beyond a target (nothing to read there). Not thread-safe: the thread
    that consumes calls `observe`.
    """

    def __init__(self, starts: Mapping[Partition, int], targets: Mapping[Partition, int]) -> None:
        self.starts = dict(starts)
        self.targets = dict(targets)
        self.reached = {tp: starts[tp] for tp in starts}
        self.pending = {tp for tp in starts if starts[tp] < targets[tp]}

    @property
    def done(self) -> bool:
        return not self.pending

    @property
    def total(self) -> int:
        """Offsets between the starts and the targets (records, markers and gaps)."""
        return sum(max(self.targets[tp] - self.starts[tp], 0) for tp in self.starts)

    @property
    def covered(self) -> int:
        """Of `total`, the offsets read so far."""
        return sum(max(min(self.reached[tp], self.targets[tp]) - self.starts[tp], 0) for tp in self.starts)

    def observe(self, consumer: Consumer, messages: Sequence[Message]) -> None:
        """Take note of a consume() result (records and end-of-partition events), then ask the
        consumer where it stands on the partitions still pending."""
        for message in messages:
            # Records need no look here: the consumer's position below covers every record it
            # handed out (a look per record cost about a fifth of a KV store's load time).
            error = message.error()
            if error is None or error.code() != KafkaError._PARTITION_EOF:
                continue
            tp = (message.topic() or "", message.partition() or 0)
            if tp in self.reached:
                self.reached[tp] = max(self.reached[tp], message.offset() or 0)
        if self.pending:
            asked = consumer.position([TopicPartition(*tp) for tp in sorted(self.pending)])
            for found in asked:
                if found.offset >= 0:
                    tp = (found.topic, found.partition)
                    self.reached[tp] = max(self.reached[tp], found.offset)
        self.pending = {tp for tp in self.pending if self.reached[tp] < self.targets[tp]}


def read_to_end(
    consumer: Consumer,
    starts: Mapping[Partition, int],
    *,
    batch_size: int = 500,
    poll_timeout: float = 0.2,
    timeout: float | None = None,
    targets: Mapping[Partition, int] | None = None,
) -> Iterator[tuple[list[Message], CatchUp]]:
    """Assign `starts` to `consumer` (not subscribed) and yield (records, progress) until every
    partition reached its end offset as read now (or `targets`).

    Records of a partition below its start are left out (a seek can hand back older ones).
    `timeout`: KafkaUnavailableError when no progress was made for that many seconds (a partition
    without a leader, Kafka gone); None waits as long as it takes.
    """
    if targets is None:
        targets = end_offsets(consumer, list(starts))
    progress = CatchUp(starts, targets)
    if progress.done:
        return
    consumer.assign([TopicPartition(t, p, starts[(t, p)]) for t, p in sorted(starts)])
    last_move, covered = time.monotonic(), progress.covered
    while not progress.done:
        messages = consumer.consume(batch_size, poll_timeout)
        records = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaUnavailableError(f"the Kafka consumer failed: {error}")
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("Kafka: %s", error)
                continue
            tp = (message.topic() or "", message.partition() or 0)
            if tp in progress.reached and (message.offset() or 0) >= progress.starts[tp]:
                records.append(message)
        progress.observe(consumer, messages)
        if progress.covered != covered:
            last_move, covered = time.monotonic(), progress.covered
        elif timeout is not None and time.monotonic() - last_move > timeout:
            raise KafkaUnavailableError(
                f"reading to the end made no progress for {timeout:.0f} s; still below their end: "
                + ", ".join(
                    f"{t}[{p}] at {progress.reached[(t, p)]} of {progress.targets[(t, p)]}"
                    for t, p in sorted(progress.pending)
                )
            )
        yield records, progress
