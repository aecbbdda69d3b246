"""The CDC relay's watcher: a daemon that keeps the connector's state and the slot's WAL on /metrics.

Debezium runs inside Kafka Connect, so no process of ours publishes CDC events, and nothing would
export the gauges Prometheus alerts on (a failed task, a slot that pins WAL). `CdcMonitor` reads the
status source every `interval` seconds, sets the gauges and beats: ok while the connector and its
tasks run, degraded (with the reason) when they do not or when Connect or PostgreSQL cannot answer.
"""

from __future__ import annotations

import logging
import threading

from outbox.errors import OutboxError
from outboxkit.ops.health import Heartbeat
from relay.slot import SlotMetrics
from relay.status import CdcStatus, CdcStatusSource

log = logging.getLogger("outbox.cdc")


class CdcMonitor:
    """One loop: read, update the gauges, beat, sleep. Not thread-safe; `run` in one thread."""

    def __init__(self, source: CdcStatusSource, interval: float = 15.0) -> None:
        if interval <= 0:
            raise ValueError(f"the interval must be positive, not {interval}")
        self.source = source
        self.interval = interval
        self.metrics = SlotMetrics()
        self.heartbeat = Heartbeat(stale_after=3 * interval + 10)
        self.last: CdcStatus | None = None

    def turn(self) -> None:
        """One read; a source that cannot answer leaves the gauges as they were and says degraded."""
        try:
            now = self.source.read()
        except OutboxError as err:
            self.heartbeat.beat("degraded", str(err))
            log.warning("cdc status unavailable: %s", err)
            return
        self.last = now
        running = bool(now.connector and now.connector.running)
        self.metrics.update(now.slot, now.slot_name, now.connector_name, running)
        if running:
            self.heartbeat.beat("ok", connector=now.connector_name, slot=now.slot_name)
        else:
            reason = (
                f"connector {now.connector_name} is not registered (outbox cdc register)"
                if now.connector is None
                else f"connector {now.connector_name} is {now.connector.connector}, tasks "
                + ", ".join(f"{i}:{s}" for i, s, _ in now.connector.tasks)
            )
            self.heartbeat.beat("degraded", reason, connector=now.connector_name, slot=now.slot_name)

    def run(self, stop: threading.Event) -> None:
        """Turn until `stop` is set (a signal handler sets it); returns within one read."""
        while not stop.is_set():
            self.turn()
            stop.wait(self.interval)
