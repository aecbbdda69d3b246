"""PollingRelay: the daemon that moves committed outbox rows to Kafka, in commit order per aggregate.

One loop, one thread. Each turn: rebalance shard leases (relay/leases.py), then for every owned
shard read a batch (relay/sql.py explains why the read never skips and keeps commit order), refuse
what Kafka would refuse (relay/preflight.py), publish the rest (relay/publisher.py), delete/mark
what Kafka acknowledged and quarantine poison. Idle, it sleeps until a NOTIFY or the poll interval.
A batch is finished in PostgreSQL before the next one is read, so memory is bounded by the batch
size, not the backlog.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka import KafkaException

from outbox.config import OutboxSettings, Retention
from outbox.errors import ConfigurationError, MigrationError
from outboxkit.kafka.errors import KafkaUnavailableError
from outboxkit.kafka.settings import KafkaSettings
from relay.errors import KafkaTroubleError, LeaseRefusedError, RelayError
from relay.identity import SourceIdentity, default_group
from relay.lease_names import lease_application_name
from relay.leases import ShardLeases
from relay.metrics import RelayMetrics
from relay.preflight import Preflight
from relay.progress import ProgressLog
from relay.publisher import IdempotentPublisher, Publisher, TransactionalPublisher
from relay.purge import PurgeSchedule
from relay.refusals import check_producer_settings, refuse_missing_database
from relay.settings import RelayMode, RelaySettings
from relay.store import OutboxStore

log = logging.getLogger("outbox.relay")

BACKLOG_REFRESH_SECONDS = 5.0
REBALANCE_SECONDS = 1.0


@dataclass(frozen=True)
class OutboxGroup:
    """The outbox a relay publishes and the group it publishes it in: learned on the first
    connection (the default group is derived from the outbox's identity, relay/identity.py) and
    kept for the relay's life, across reconnections."""

    identity: SourceIdentity
    group: str


@dataclass(frozen=True)
class Connected:
    """What the loop has only while connected to PostgreSQL. `_connect()` makes it whole and
    `_drop_database()` drops it whole: the loop has all of it or none of it."""

    conn: psycopg.Connection[Any]
    """Batches, quarantine, purge and the backlog gauge; LISTEN for new events."""
    lease_conn: psycopg.Connection[Any]
    """Holds the shard leases (session advisory locks): closing it releases them."""
    source: OutboxGroup
    leases: ShardLeases
    store: OutboxStore

    def alive(self) -> bool:
        return not self.conn.closed and not self.lease_conn.closed

    def close(self) -> None:
        close_quietly(self.conn, self.lease_conn)


def close_quietly(*conns: psycopg.Connection[Any]) -> None:
    for conn in conns:
        with contextlib.suppress(psycopg.Error):
            conn.close()


class PollingRelay:
    """Publishes the outbox of `outbox.database_url` to `outbox.kafka_bootstrap_servers`.

    `run()` blocks until `stop()` (safe to call from a signal handler or another thread); the batch
    in flight is finished first. Several relays of one group may run at once: each shard is
    published by one of them at a time. Nothing process-wide is changed, so a service may embed
    the relay; the `outbox relay run` daemon tunes its own process's garbage collector.
    """

    def __init__(
        self,
        outbox: OutboxSettings,
        settings: RelaySettings,
        metrics: RelayMetrics | None = None,
        *,
        kafka: KafkaSettings | None = None,
    ) -> None:
        """`kafka`: the cluster and its login; None reads OUTBOX_KAFKA_... with the brokers of
        `outbox`. Connection settings in `settings.producer` apply to every client too."""
        if outbox.retention is Retention.CDC_DELETE:
            raise ConfigurationError(
                "retention=cdc_delete deletes every event in the transaction that wrote it: only the "
                "CDC relay (outbox cdc register) can publish them. Use retention delete or keep here."
            )
        self.outbox = outbox
        self.settings = settings
        self.metrics = metrics or RelayMetrics()
        self.instance = f"{socket.gethostname()}-{os.getpid()}"
        self.stopping = False
        self.connected: Connected | None = None
        self.source: OutboxGroup | None = None
        self.publishers: dict[int, Publisher] = {}
        self.shared_publisher: IdempotentPublisher | None = None
        if kafka is None:
            kafka = KafkaSettings.load(bootstrap_servers=outbox.kafka_bootstrap_servers)
        self.kafka = kafka.with_connection(settings.producer)
        self.guard = Preflight(self.kafka, settings.producer)
        self.progress: ProgressLog | None = None
        self.backoff = 0.0
        self.next_rebalance = 0.0
        self.next_backlog = 0.0
        self.purge = PurgeSchedule(settings.purge_interval, settings.purge_chunk)
        self.refusal: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def stop(self) -> None:
        self.stopping = True

    def run(self, on_turn: Callable[[], None] | None = None) -> None:
        log.info(
            "relay starting",
            extra={
                "instance": self.instance,
                "mode": self.settings.mode.value,
                "group": self.settings.group or "(derived from the database)",
                "shards": self.settings.shards,
            },
        )
        try:
            check_producer_settings(self.kafka, self.settings)
            while not self.stopping:
                try:
                    busy = self._turn()
                    self.backoff = 0.0
                    self.metrics.beat(
                        status="ok", instance=self.instance, shards=sorted(self.publishers or self._owned())
                    )
                    if on_turn:
                        on_turn()
                    if not busy:
                        self._idle(self.settings.poll_interval)
                except (psycopg.OperationalError, MigrationError) as err:  # outbox tables missing: wait
                    self._refuse_missing_database(err)
                    self._fail("postgres", err)
                    self._drop_database()
                except (KafkaException, KafkaUnavailableError) as err:
                    self._fail("kafka", err)
                    self._drop_publishers()
                except LeaseRefusedError as err:
                    self._refuse_shards(err)
        except RelayError as err:
            self.metrics.beat(status="failed", reason=str(err), instance=self.instance)
            log.error("relay cannot go on: %s", err)
            raise
        finally:
            self._drop_publishers()
            self._drop_database()
            log.info("relay stopped", extra={"instance": self.instance})

    def _refuse_missing_database(self, err: Exception) -> None:
        if self.source is None:  # never connected yet: a wrong URL (later, an outage: wait)
            refuse_missing_database(self.outbox.database_url, err)

    def _owned(self) -> set[int]:
        return set(self.connected.leases.owned) if self.connected else set()

    def _fail(self, kind: str, err: Exception) -> None:
        self.metrics.errors.labels(kind).inc()
        self.metrics.beat(status="degraded", reason=f"{kind}: {err}", instance=self.instance)
        self.backoff = min(self.settings.max_backoff, max(0.1, self.backoff * 2))
        log.warning("relay %s error, retrying in %.1fs: %s", kind, self.backoff, err)
        self._idle(self.backoff, listen=False)

    def _refuse_shards(self, err: LeaseRefusedError) -> None:
        """Another shard count or group is live on the table: own nothing, say so (once), ask again
        later. Waiting, not exiting: in a rolling change of the count (or group), the new relays
        take over as soon as the last old one stops, without a crash loop of restarts in between."""
        if str(err) != self.refusal:
            log.error("relay takes no shard: %s", err, extra={"instance": self.instance})
            self.refusal = str(err)
        self.metrics.errors.labels("shards").inc()
        self.metrics.beat(status="degraded", reason=str(err), instance=self.instance, shards=[])
        self._idle(self.settings.poll_interval, listen=False)

    # -- one turn ----------------------------------------------------------------------------
    def _turn(self) -> bool:
        """Publish one batch per owned shard; True if some shard may have more waiting."""
        db = self._connect()
        now = time.monotonic()
        if now >= self.next_rebalance:
            self._rebalance(db)
            self.next_rebalance = now + min(REBALANCE_SECONDS, self.settings.poll_interval)
        if now >= self.next_backlog:
            self._refresh_backlog(db)
            self.next_backlog = now + BACKLOG_REFRESH_SECONDS
        busy = False
        if self.purge.due(now):
            busy = self.purge.purged(now, db.store.purge(self.purge.chunk))
        for shard in sorted(self._owned()):
            if self.stopping:
                break
            busy |= self._batch(db, shard) >= self.settings.batch_size
        return busy

    def _batch(self, db: Connected, shard: int) -> int:
        started = time.perf_counter()
        batch = db.store.fetch(shard, self.settings.shards, self.settings.batch_size)
        if not batch:
            return 0
        publishable, refused = self.guard.split(batch)
        for event_id, reason in refused:
            self._quarantine(db, event_id, reason)
        result = self._publisher(db, shard).publish(publishable)
        db.store.finish(result.delivered)
        for event_id, reason in result.poisoned:
            self._quarantine(db, event_id, reason)
        self.metrics.published.inc(len(result.delivered))
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        if result.retry:
            # Kafka-side trouble: nothing undelivered is lost (it stays in the outbox). The loop
            # reports it (/healthz degraded), backs off longer each time it recurs, and makes new
            # producers: one that failed for good (fatal) is replaced, and a transactional one's
            # recovery settles a commit whose outcome was unknown.
            raise KafkaTroubleError(f"shard {shard}: {result.retry}")
        return len(batch)

    def _quarantine(self, db: Connected, event_id: int, reason: str) -> None:
        db.store.quarantine(event_id, reason)
        self.metrics.quarantined.inc()
        log.error("event quarantined", extra={"event_row": event_id, "reason": reason})

    # -- shards and publishers ---------------------------------------------------------------
    def _rebalance(self, db: Connected) -> None:
        gained, released = db.leases.rebalance()
        for shard in sorted(released):
            self._close_publisher(shard)
            log.info("shard released", extra={"shard": shard, "instance": self.instance})
        for shard in sorted(gained):
            log.info("shard acquired", extra={"shard": shard, "instance": self.instance})
            if self.settings.mode is RelayMode.TRANSACTIONAL:
                self._publisher(db, shard)  # fence a zombie owner and recover before the first read
        self.metrics.owned_shards.set(len(self._owned()))

    def _publisher(self, db: Connected, shard: int) -> Publisher:
        if self.settings.mode is RelayMode.IDEMPOTENT:
            if self.shared_publisher is None:
                self.shared_publisher = IdempotentPublisher(self.kafka, self.settings)
            return self.shared_publisher
        publisher = self.publishers.get(shard)
        if publisher is None:
            # Every new producer of a shard (first owner, new owner, replacement after a fatal
            # error whose commit outcome is unknown) fences the previous one, then finishes what
            # the shard's last committed transaction published: only then may it read a batch.
            progress = self._progress(db.source)
            publisher = TransactionalPublisher(self.kafka, self.settings, shard, progress)
            try:
                self._recover(db, shard, publisher)
            except BaseException:
                publisher.close()
                raise
            self.publishers[shard] = publisher
        return publisher

    def _progress(self, source: OutboxGroup) -> ProgressLog:
        if self.progress is None:
            self.progress = ProgressLog(
                self.kafka, self.settings.progress_topic, source.group, self.settings.shards, source.identity
            )
        if not self.progress.partitions:
            self.progress.ensure_topic(self.settings.message_timeout_ms / 1000)
            self.progress.max_bytes = self.guard.limit(self.progress.topic)
        return self.progress

    def _recover(self, db: Connected, shard: int, publisher: Publisher) -> None:
        """Finish in PostgreSQL what the shard's last committed Kafka transaction published."""
        ids = publisher.recover()
        if ids:
            db.store.finish(ids)
            log.info("recovered batch", extra={"shard": shard, "events": len(ids)})

    def _close_publisher(self, shard: int) -> None:
        publisher = self.publishers.pop(shard, None)
        if publisher is not None:
            try:
                publisher.close()
            except KafkaException as err:
                log.warning("closing the producer of shard %s failed: %s", shard, err)

    def _drop_publishers(self) -> None:
        for shard in list(self.publishers):
            self._close_publisher(shard)
        if self.shared_publisher is not None:
            with contextlib.suppress(KafkaException):
                self.shared_publisher.close()
            self.shared_publisher = None

    # -- PostgreSQL ----------------------------------------------------------------------------
    def _connect(self) -> Connected:
        if self.connected is not None and self.connected.alive():
            return self.connected
        self._drop_database()
        url = self.outbox.database_url
        conn = psycopg.connect(url, autocommit=True, application_name="outbox-relay-worker")
        opened = [conn]  # closed again if the rest cannot be made: the loop has all of it or none
        try:
            if self.source is None:
                identity = SourceIdentity.of(conn)
                self.source = OutboxGroup(identity, self.settings.group or default_group(identity))
                log.info("relay group", extra={"group": self.source.group, "outbox": identity.describe()})
            source = self.source
            lease_conn = psycopg.connect(
                url, autocommit=True, application_name=lease_application_name(source.group, self.instance)
            )
            opened.append(lease_conn)
            if self.outbox.notify:
                conn.execute(f'LISTEN "{self.outbox.notify_channel}"')
            leases = ShardLeases(
                lease_conn, source.group, self.settings.shards, self.settings.max_shards_per_instance
            )
            store = OutboxStore(
                conn, keep=self.outbox.retention is Retention.KEEP, retention_days=self.outbox.retention_days
            )
        except BaseException:
            close_quietly(*opened)
            raise
        self.connected = Connected(conn, lease_conn, source, leases, store)
        self.next_rebalance = 0.0
        return self.connected

    def _drop_database(self) -> None:
        # Losing the lease connection loses the leases: stop publishing those shards at once.
        self._drop_publishers()
        if self.connected is not None:
            self.connected.close()
            self.connected = None
        self.metrics.owned_shards.set(0)

    def _refresh_backlog(self, db: Connected) -> None:
        backlog, oldest, quarantined = db.store.backlog()
        self.metrics.backlog.set(backlog)
        self.metrics.oldest_age.set(oldest)
        self.metrics.quarantine_size.set(quarantined)

    def _idle(self, seconds: float, listen: bool = True) -> None:
        """Sleep up to `seconds`, waking early on NOTIFY or stop()."""
        deadline = time.monotonic() + seconds
        while not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if listen and self.connected is not None and self.outbox.notify:
                # One notification is enough to wake up: the next turn reads everything committed.
                # (Later notifications cost at most one extra, empty turn.)
                for _ in self.connected.conn.notifies(timeout=min(left, 0.25), stop_after=1):
                    return
            else:
                time.sleep(min(left, 0.1))
