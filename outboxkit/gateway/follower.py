"""The live reader: one read_committed consumer assigned to every partition of the status topics,
from their end at start-up, handing each batch to the hub in the event loop's thread.

No consumer group coordinates gateways: each process reads everything (docs/gateway.md, "Scaling"),
so a client may resume on any of them. The consumer commits nothing; its group id is its own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable, Sequence

from confluent_kafka import Consumer, Message, TopicPartition

from outboxkit.gateway.hub import LiveRecord
from outboxkit.gateway.metrics import GatewayMetrics
from outboxkit.gateway.protocol import Position
from outboxkit.kafka import clients
from outboxkit.kafka.admin import partition_counts
from outboxkit.kafka.catchup import end_offsets
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
    ) -> None:
        self.kafka = kafka
        self.topics = tuple(topics)
        self.metrics = metrics
        self.heartbeat = heartbeat
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None

    def open(self) -> dict[Position, int]:
        """Assign every partition at its end (read_committed) and return those starting points."""
        consumer = clients.consumer(self.kafka, f"outbox-gateway-{uuid.uuid4().hex[:12]}", FOLLOWER_SETTINGS)
        counts = partition_counts(consumer, self.topics)
        partitions = [(topic, p) for topic in self.topics for p in range(counts[topic])]
        starts = end_offsets(consumer, partitions)
        consumer.assign([TopicPartition(t, p, starts[(t, p)]) for t, p in partitions])
        self._consumer = consumer
        return starts

    async def follow(self, dispatch: Callable[[list[LiveRecord]], Awaitable[None]]) -> None:
        """Read in a thread, dispatch in the loop, one batch after the other; at most
        `QUEUED_BATCHES` wait, then the reading thread waits too (memory stays bounded)."""
        batches: asyncio.Queue[list[LiveRecord]] = asyncio.Queue(QUEUED_BATCHES)
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, args=(loop, batches), name="gateway-follower", daemon=True
        )
        self._thread.start()
        while True:
            batch = await batches.get()
            try:
                await dispatch(batch)
            except Exception:  # a bug in routing must not stop every connection's stream
                log.exception("routing a batch failed")

    def _run(self, loop: asyncio.AbstractEventLoop, batches: asyncio.Queue[list[LiveRecord]]) -> None:
        consumer = self._consumer
        assert consumer is not None, "open() first"
        fields: dict[str, JSON] = {"topics": list(self.topics)}
        while not self._stop.is_set():
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
                handed = asyncio.run_coroutine_threadsafe(batches.put(batch), loop)
                while not self._stop.is_set():
                    try:
                        handed.result(timeout=0.5)
                        break
                    except TimeoutError:
                        continue

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
