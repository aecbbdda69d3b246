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
from collections.abc import Callable, Sequence

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
        consumer = clients.consumer(self.kafka, f"outbox-gateway-{uuid.uuid4().hex[:12]}")
        counts = partition_counts(consumer, self.topics)
        partitions = [(topic, p) for topic in self.topics for p in range(counts[topic])]
        starts = end_offsets(consumer, partitions)
        consumer.assign([TopicPartition(t, p, starts[(t, p)]) for t, p in partitions])
        self._consumer = consumer
        return starts

    def start(self, loop: asyncio.AbstractEventLoop, dispatch: Callable[[list[LiveRecord]], None]) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(loop, dispatch), name="gateway-follower", daemon=True
        )
        self._thread.start()

    def _run(self, loop: asyncio.AbstractEventLoop, dispatch: Callable[[list[LiveRecord]], None]) -> None:
        consumer = self._consumer
        assert consumer is not None, "open() first"
        fields: dict[str, JSON] = {"topics": list(self.topics)}
        while not self._stop.is_set():
            try:
                messages = consumer.consume(BATCH, 0.2)
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
                loop.call_soon_threadsafe(dispatch, batch)

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
