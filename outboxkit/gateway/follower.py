"""The live reader: one read_committed consumer assigned to every partition of the status topics,
from their end at start-up, handing each batch to the hub in the event loop's thread.

No consumer group coordinates gateways: each process reads everything (docs/gateway.md, "Scaling"),
so a client may resume on any of them. The consumer commits nothing; its group id is its own.

Partitions added to a topic later are found by a look at the metadata every
`partition_check_interval` seconds and read from their beginning (their first offset still in the
log): the records written to them before the look are not lost. The hub learns of them (their
start becomes its live position) before any of their records.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from confluent_kafka import Consumer, Message, TopicPartition

from outboxkit.gateway.hub import LiveRecord
from outboxkit.gateway.metrics import GatewayMetrics
from outboxkit.gateway.protocol import Position
from outboxkit.kafka import clients
from outboxkit.kafka.admin import partition_counts
from outboxkit.kafka.catchup import end_offsets, watermarks
from outboxkit.kafka.errors import UndecodableRecordError
from outboxkit.kafka.records import decode_message
from outboxkit.kafka.settings import KafkaSettings
from outboxkit.ops.health import HealthStatus, Heartbeat
from outboxkit.ops.status import JSON

log = logging.getLogger("outboxkit.gateway")

BATCH = 500
QUEUED_BATCHES = 4
FOLLOWER_SETTINGS = {
    # a read_committed fetch that finds only records of a transaction still open waits this long
    # for more before answering empty: librdkafka's 500 ms default is added to every delivery then
    "fetch.wait.max.ms": 20,
}


class Follower:
    def __init__(
        self,
        kafka: KafkaSettings | str,
        topics: Sequence[str],
        metrics: GatewayMetrics,
        heartbeat: Heartbeat,
        partition_check_interval: float = 30.0,
    ) -> None:
        self.kafka = kafka
        self.topics = tuple(topics)
        self.metrics = metrics
        self.heartbeat = heartbeat
        self.partition_check_interval = partition_check_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self._assigned: set[Position] = set()

    def open(self) -> dict[Position, int]:
        """Assign every partition at its end (read_committed) and return those starting points."""
        consumer = clients.consumer(self.kafka, f"outbox-gateway-{uuid.uuid4().hex[:12]}", FOLLOWER_SETTINGS)
        counts = partition_counts(consumer, self.topics)
        partitions = [(topic, p) for topic in self.topics for p in range(counts[topic])]
        starts = end_offsets(consumer, partitions)
        consumer.assign([TopicPartition(t, p, starts[(t, p)]) for t, p in partitions])
        self._consumer = consumer
        self._assigned = set(partitions)
        return starts

    async def follow(
        self,
        dispatch: Callable[[list[LiveRecord]], Awaitable[None]],
        added: Callable[[dict[Position, int]], None],
    ) -> None:
        """Read in a thread, dispatch in the loop, one batch after the other; at most
        `QUEUED_BATCHES` wait, then the reading thread waits too (memory stays bounded).
        `added` gets the partitions found later, with the offset each is read from."""
        batches: asyncio.Queue[list[LiveRecord] | dict[Position, int]] = asyncio.Queue(QUEUED_BATCHES)
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, args=(loop, batches), name="gateway-follower", daemon=True
        )
        self._thread.start()
        while True:
            batch = await batches.get()
            if isinstance(batch, dict):
                added(batch)
                continue
            try:
                await dispatch(batch)
            except Exception:  # a bug in routing must not stop every connection's stream
                log.exception("routing a batch failed")

    def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        batches: asyncio.Queue[list[LiveRecord] | dict[Position, int]],
    ) -> None:
        consumer = self._consumer
        assert consumer is not None, "open() first"
        fields: dict[str, JSON] = {"topics": list(self.topics)}
        next_check = time.monotonic() + self.partition_check_interval
        while not self._stop.is_set():
            if time.monotonic() >= next_check:
                found = self._new_partitions(consumer)
                if found:
                    self._hand(loop, batches, found)
                next_check = time.monotonic() + self.partition_check_interval
            try:
                # poll waits for the first record only; consume(n, timeout) would wait until n
                # records or the timeout, adding up to the whole timeout to every delivery
                first = consumer.poll(0.2)
                messages = [first, *consumer.consume(BATCH - 1, 0)] if first is not None else []
            except Exception as err:  # librdkafka raises on fatal errors only
                log.exception("the live consumer failed")
                self.heartbeat.beat(HealthStatus.FAILED, reason=str(err), **fields)
                return
            self.heartbeat.beat(HealthStatus.OK, None, **fields)
            batch = []
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.fatal():
                        self.heartbeat.beat(HealthStatus.FAILED, reason=str(error), **fields)
                        log.error("the live consumer failed: %s", error)
                        return
                    log.warning("Kafka: %s", error)
                    continue
                batch.append(_live(message, self.metrics))
            if batch:
                self.metrics.records.inc(len(batch))
                self._hand(loop, batches, batch)

    def _hand(
        self,
        loop: asyncio.AbstractEventLoop,
        batches: asyncio.Queue[list[LiveRecord] | dict[Position, int]],
        item: list[LiveRecord] | dict[Position, int],
    ) -> None:
        handed = asyncio.run_coroutine_threadsafe(batches.put(item), loop)
        while not self._stop.is_set():
            try:
                handed.result(timeout=0.5)
                return
            except TimeoutError:
                continue

    def _new_partitions(self, consumer: Consumer) -> dict[Position, int]:
        """Partitions of the topics not followed yet, assigned from their beginning; {} when
        there are none or the metadata could not be read (tried again at the next look)."""
        try:
            counts = partition_counts(consumer, self.topics, timeout=10)
            new = [(t, p) for t in self.topics for p in range(counts[t]) if (t, p) not in self._assigned]
            if not new:
                return {}
            starts = {tp: low for tp, (low, _high) in watermarks(consumer, new, timeout=10).items()}
        except Exception as err:  # KafkaUnavailableError, TopicNotFoundError (deleted meanwhile)
            log.warning("cannot look for new partitions of %s: %s", list(self.topics), err)
            return {}
        consumer.incremental_assign([TopicPartition(t, p, starts[(t, p)]) for t, p in new])
        self._assigned.update(new)
        log.info("following new partitions", extra={"partitions": [f"{t}[{p}]" for t, p in new]})
        return starts

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._consumer is not None:
            self._consumer.close()


def _live(message: Message, metrics: GatewayMetrics) -> LiveRecord:
    kind, stamp = message.timestamp()
    timestamp = stamp / 1000 if kind != 0 and stamp > 0 else None
    try:
        event = decode_message(message)
    except UndecodableRecordError as err:
        metrics.drops.labels("undecodable").inc()
        log.warning("skipping a record that is not an event: %s", err)
        event = None
    return LiveRecord(
        message.topic() or "", message.partition() or 0, message.offset() or 0, timestamp, event
    )
