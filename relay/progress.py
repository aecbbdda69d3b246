"""Transactional mode's progress log: the ids of each shard's last batch, in a compacted Kafka topic.

The relay writes the record in the *same Kafka transaction* as the batch's events (the approach of
Kafka Connect's exactly-once sources, KIP-618). After a crash between the Kafka commit and the
PostgreSQL delete/mark, the last committed record names exactly the ids that Kafka has but the
outbox still holds, so the next owner of the shard finishes them instead of publishing them again.
Only the last batch can be in that state: the relay finishes a batch in PostgreSQL before it reads
the next one. The record holds ids, not a high-water mark: a lower id may commit later.

Ids mean something only in the outbox that drew them, so each record names its outbox
(relay/identity.py) and a relay refuses to recover from a record of another outbox.
"""

from __future__ import annotations

import base64
import itertools
import time
import zlib
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition

from outboxkit.kafka import admin, clients
from outboxkit.kafka.catchup import end_offsets, read_to_end
from outboxkit.kafka.errors import KafkaUnavailableError
from outboxkit.kafka.settings import KafkaSettings
from relay.errors import ForeignProgressError, KafkaTroubleError
from relay.identity import SourceIdentity

# Room left in a progress record for its key, headers and record framing.
RECORD_OVERHEAD_BYTES = 1024


def pack_ids(ids: Iterable[int]) -> str:
    """Sorted ids as zlib-compressed 64-bit deltas, base64: a shard's ids are scattered when there
    are several shards, and a list of ranges then grows by ~20 bytes per id (past Kafka's 1 MB
    record limit at 50k ids); the deltas are small and compress to a byte or two each."""
    ordered = sorted(ids)
    deltas = array("q", (b - a for a, b in zip([0, *ordered], ordered, strict=False)))
    return base64.b64encode(zlib.compress(deltas.tobytes(), 1)).decode()


def unpack_ids(packed: str) -> list[int]:
    deltas = array("q")
    deltas.frombytes(zlib.decompress(base64.b64decode(packed)))
    return list(itertools.accumulate(deltas))


def packed_size_bound(count: int) -> int:
    """An upper bound of len(pack_ids(...)) for `count` ids (zlib adds at most ~0.1 % + 11 bytes)."""
    return (8 * count * 1002 // 1000 + 64) * 4 // 3 + 4


def from_ranges(ranges: Sequence[Sequence[int]]) -> list[int]:
    """Ids of a record written by an older release: [[1,3],[7,8]] -> [1,2,3,7,8]."""
    return [i for start, end in ranges for i in range(start, end + 1)]


class ProgressLog:
    """Reads and encodes progress records of one relay group."""

    def __init__(
        self, kafka: KafkaSettings | str, topic: str, group: str, shards: int, source: SourceIdentity
    ) -> None:
        self.kafka = KafkaSettings.of(kafka)
        self.topic = topic
        self.group = group
        self.shards = shards
        self.source = source
        self.partitions = 0
        self.max_bytes = 1_000_000
        """The largest record the progress topic and the producer take (the relay sets it)."""

    def ensure_topic(self, timeout: float = 30.0) -> None:
        """Create the compacted topic (one partition per shard) unless it exists, and learn its
        partition count. Raises KafkaTroubleError (the relay retries) when Kafka cannot say."""
        config = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
        try:
            self.partitions = admin.ensure_topic(
                clients.admin(self.kafka), self.topic, partitions=self.shards, config=config, timeout=timeout
            )
        except KafkaUnavailableError as err:
            raise KafkaTroubleError(f"the progress topic: {err}") from err

    def key(self, shard: int) -> bytes:
        return f"{self.group}/{shard}".encode()

    def partition(self, shard: int) -> int:
        if self.partitions < 1:
            raise KafkaTroubleError(f"the progress topic {self.topic!r} is not known yet (ensure_topic)")
        return shard % self.partitions

    def record(self, shard: int, ids: Iterable[int], *, now: float | None = None) -> bytes:
        """The record naming `ids`. Its time is whole milliseconds (`at_ms`, 13 digits until the
        year 2286): a float's shortest form varies by a few characters from moment to moment, so a
        record measured by `fitting` could come out longer when written."""
        at_ms = int((time.time() if now is None else now) * 1000)
        return orjson.dumps({"ids": pack_ids(ids), "at_ms": at_ms, "source": self.source.as_dict()})

    def fitting(self, ids: Sequence[int]) -> int:
        """How many of `ids` (a batch, in order) one progress record can name within `max_bytes`:
        a batch is cut to that many, the rest waits for the next batch, so a shard never gets
        stuck on a record Kafka refuses."""
        room = self.max_bytes - RECORD_OVERHEAD_BYTES
        if packed_size_bound(len(ids)) <= room or len(self.record(0, ids)) <= room:
            return len(ids)
        low, high = 1, len(ids)  # the first id alone always fits: find the longest prefix that does
        while low < high:
            middle = (low + high + 1) // 2
            if len(self.record(0, ids[:middle])) <= room:
                low = middle
            else:
                high = middle - 1
        return low

    def last_batch(self, shard: int, timeout: float = 30.0) -> list[int]:
        """Ids of the shard's last committed batch ([] if none), read with read_committed.

        The record is near the end of the shard's partition (other groups' shards may share it):
        a window before the end is read first, then a window eight times as large, and so on.
        """
        consumer = clients.consumer(self.kafka, f"{self.group}-progress-reader")
        try:
            partition = self.partition(shard)
            tp = (self.topic, partition)
            try:
                high = end_offsets(consumer, [tp], timeout)[tp]
                low = self._low(consumer, partition, timeout)
                window = 64
                while True:
                    start = max(low, high - window)
                    found = self._scan(consumer, partition, start, high, key=self.key(shard), timeout=timeout)
                    if found is not None or start == low:
                        return found or []
                    window *= 8
            except KafkaUnavailableError as err:
                raise KafkaTroubleError(f"reading the progress topic {self.topic!r} failed: {err}") from err
        finally:
            consumer.close()

    def _ids_of(self, record: dict[str, Any], partition: int, offset: int | None) -> list[int]:
        """The record's ids, if this relay's outbox wrote it. Records of releases before the
        identity was recorded carry none and are taken as ours (upgrades keep their recovery)."""
        source = record.get("source")
        if source is not None and source != self.source.as_dict():
            theirs = SourceIdentity(**source).describe() if isinstance(source, dict) else repr(source)
            raise ForeignProgressError(
                f"relay group {self.group!r} is also used by the relays of another database: the"
                f" progress topic {self.topic!r} (partition {partition}, offset {offset}) holds a batch"
                f" of {theirs}, and this relay publishes {self.source.describe()}. Recovering from it"
                " would mark this outbox's rows of the same ids as published. Give each service's"
                " relays their own OUTBOX_RELAY_GROUP (or leave it unset: the default names the"
                " database), then start this relay again."
            )
        ids = record.get("ids", [])
        return unpack_ids(ids) if isinstance(ids, str) else from_ranges(ids)  # lists: older releases

    def _low(self, consumer: Consumer, partition: int, timeout: float) -> int:
        low, _high = consumer.get_watermark_offsets(TopicPartition(self.topic, partition), timeout=timeout)
        return int(low)

    def _scan(
        self, consumer: Consumer, partition: int, start: int, end: int, *, key: bytes, timeout: float
    ) -> list[int] | None:
        """The ids of the shard's last record between `start` and `end`, None if it has none there."""
        last: list[int] | None = None
        tp = (self.topic, partition)
        for records, _reached in read_to_end(consumer, {tp: start}, targets={tp: end}, timeout=timeout):
            for msg in records:
                if msg.key() == key:
                    last = self._ids_of(orjson.loads(msg.value() or b"{}"), partition, msg.offset())
        return last
