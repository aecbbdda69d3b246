"""Mode `kafka`: consume, transform and produce inside Kafka transactions (KIP-447).

One transactional producer per instance; a transaction holds the outputs (and dead letters) of
the inputs handled in it and the input positions, sent with the consumer's group metadata. It
commits when it is `transaction_records` inputs or `transaction_ms` old. Readers of the outputs
(read_committed) see all of a transaction or nothing.

The committed offsets are the truth: a partition assigned to this instance starts at the group's
committed offset (asked with require_stable, so a transaction still open elsewhere is waited for).
On a revocation the open transaction commits (the partitions' work so far is kept); when
partitions are lost, or a transaction cannot commit, it is aborted and every owned partition is
read again from its committed offset — the aborted outputs were never visible, so nothing is
doubled. A zombie (paused past its session timeout while another member took over) cannot commit:
the coordinator refuses the offsets of a stale generation, and the broker aborts its transaction
after `transaction_timeout_ms`.

Across a broker outage an abort is tried for twice the transaction timeout, then a new producer
of the same transactional.id (made until Kafka answers) ends the transaction; a producer that failed
without being fenced (the broker aborted its timed-out transaction meanwhile) is replaced by a
new one of the same transactional.id; a producer fenced by another is never replaced. After
partitions were lost, the next claim renews the producer (its coordinators looked up afresh).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from outbox import Outbox, TopicRouter
from outboxkit.kafka import admin, clients, transactions
from outboxkit.kafka.dead_letter import dead_letter_headers
from outboxkit.kafka.errors import KafkaUnavailableError
from outboxkit.kafka.group import GroupConsumer
from outboxkit.kafka.records import Partition, where
from outboxkit.kafka.settings import KafkaSettings
from outboxkit.kafka.transactions import ProducerFencedError, TransactionAbortedError
from outboxkit.processors.errors import ProcessorError
from outboxkit.processors.handling import InputHandler, Outcome, log_dead_letter
from outboxkit.processors.metrics import ProcessorMetrics
from outboxkit.processors.processor import Processor

if TYPE_CHECKING:
    from outboxkit.ops.health import Heartbeat

log = logging.getLogger(__name__)

SEEK_SETTLE_SECONDS = 1.0
"""After a rewind, how long the consumer's positions are not trusted for partitions that handed
over no record since: a seek is asynchronous, and until it is done a position may still name the
offset before the rewind (committing it would skip the records in between)."""

CLAIM_TIMEOUT_SECONDS = 120.0
"""How long taking partitions waits for their committed offsets: the answer waits while the
broker is away or a transaction holding offsets of the group is open (it ends at the latest at
the transaction timeout once the broker is back). 30 s was not enough for a partition taken while
the broker restarted; it stays well inside the consumer's max.poll.interval.ms (300 s). A stop
asked meanwhile ends the wait within a second (the partitions are left unclaimed)."""

HELD_PAST_TIMEOUT_SECONDS = 15.0
"""How long past the transaction timeout a transaction may hold offsets of the group before this
instance re-initialises its producer: the broker aborts a timed-out transaction within its
cleanup interval (transaction.abort.timed.out.transaction.cleanup.interval.ms, 10 s by default)."""

IDLE_COMMIT_SECONDS = 1.0
"""How often an idle instance commits positions that moved past commit markers or aborted
records (an offsets-only transaction), so the group's lag reaches 0 when everything is handled."""


def consumer_settings(processor: Processor) -> dict[str, Any]:
    config = processor.config
    settings: dict[str, Any] = {
        "session.timeout.ms": config.session_timeout_ms,
        "heartbeat.interval.ms": max(config.session_timeout_ms // 5, 100),
    }
    if config.instance_id:
        settings["group.instance.id"] = config.instance_id
    settings.update(config.consumer_settings)
    return settings


def transactional_id(processor: Processor) -> str:
    """`<name>-<instance_id>`: stable across restarts of one instance (a restart fences the old
    one at once); a random one without an instance id."""
    return f"{processor.name}-{processor.config.instance_id or uuid.uuid4().hex[:12]}"


class KafkaProcessorRunner:
    """One instance of a mode-`kafka` processor. `run` blocks its thread until `stop` is set."""

    def __init__(
        self,
        processor: Processor,
        kafka: KafkaSettings | str,
        *,
        metrics: ProcessorMetrics | None = None,
        health: Heartbeat | None = None,
    ) -> None:
        self.processor = processor
        self.config = processor.config
        self.kafka = KafkaSettings.of(kafka)
        self.metrics = metrics or ProcessorMetrics()
        # Bound once: labels() looks the child up under a lock (3 µs), and _handle runs per batch.
        self._processed = self.metrics.processed.labels(processor.name)
        self._outputs = self.metrics.outputs.labels(processor.name)
        self._dead_lettered = self.metrics.dead_lettered.labels(processor.name)
        self.health = health
        self.handler = InputHandler(processor)
        self.outbox = Outbox(router=TopicRouter(self.config.output_topic), source=processor.name)
        self.group = GroupConsumer(
            self.kafka,
            processor.group_id,
            processor.topics,
            self,
            settings=consumer_settings(processor),
            failure=lambda err: ProcessorError(
                f"processor {processor.name!r} could not take partitions: {err}"
            ),
        )
        self.producer: Producer | None = None
        self._transactional_id = transactional_id(processor)
        self.committed: dict[Partition, int] = {}
        """Per owned partition: the committed next offset (claimed, or sent in a committed transaction)."""
        self._done: dict[Partition, int] = {}
        """Per partition: the offset after the last input handled in the open transaction."""
        self._open_since: float | None = None
        self._inputs = 0
        self._rewind = False
        self._rewound_at = float("-inf")
        self._last_idle_commit = 0.0
        self._admin: AdminClient | None = None
        self._renew_producer = False
        """Whether partitions were lost since the producer was made (see `_renew_after_loss`)."""
        self._reinitialised = False
        """Whether the running claim's long wait re-initialised the producer (once per claim)."""

    @property
    def in_transaction(self) -> bool:
        return self._open_since is not None

    def run(self, stop: threading.Event) -> None:
        """Consume, transform and produce until `stop` is set; raises ProcessorError (or an
        OutboxError of the Kafka layer) when the processor cannot go on."""
        config = self.config
        self.producer = self._new_producer()
        try:
            self.group.run(
                stop,
                self._handle,
                batch_size=min(500, config.transaction_records),
                batch_timeout=self._wait,
                on_turn=self._turn,
                on_stop=lambda _consumer: self._stopping(),
            )
        except Exception as err:
            if self.health is not None:
                self.health.beat("failed", str(err))
            self._abort_quietly(going_on=False)
            raise
        finally:
            try:
                self.producer.flush(5)
            except KafkaException as err:  # fenced: what it holds is aborted by the broker anyway
                log.warning("the producer could not flush: %s", err)

    # -- the position port (called from inside consume) --------------------------------------

    def claim(self, consumer: Consumer, partitions: Sequence[Partition]) -> dict[Partition, int]:
        self._reinitialised = False
        found = transactions.committed_offsets(
            consumer,
            partitions,
            timeout=CLAIM_TIMEOUT_SECONDS,
            cancelled=lambda: self.group.stopping,
            watch=lambda waited: self._held(partitions, waited),
        )
        self.committed.update(found)
        if self._renew_producer and not self.in_transaction:
            self._renew_producer = False
            self._renew_after_loss()
        return found

    def _renew_after_loss(self) -> None:
        """Partitions were lost (the broker or the group went on without this member): go on with a
        new producer before the next transaction. The old one may keep a coordinator of the
        broker that went away, and its send_offsets_to_transaction then blocks for good
        (librdkafka #5511; `hang_guard` ended the process in 9 of 10 broker restarts of the test)."""
        log.info("partitions were lost: a new transactional producer, its coordinators looked up afresh")
        try:
            self._replace_producer(bounded=True)
        except ProducerFencedError as err:  # the old one goes on; a hang ends the process as before
            log.warning("could not renew the transactional producer: %s", err)

    def _held(self, partitions: Sequence[Partition], waited: float) -> str:
        """Why taking `partitions` waits (asked of the group coordinator). A transaction that holds
        their offsets past the transaction timeout should have been aborted by the broker; when
        it is one of this instance's own transactional.id (e.g. one the broker kept across a
        restart), re-initialising the producer aborts it at once, so that is done once."""
        if self._admin is None:
            self._admin = clients.admin(self.kafka)
        try:
            held = admin.held_offsets(self._admin, self.processor.group_id, partitions, timeout=5)
        except KafkaUnavailableError as err:
            return f"Kafka does not say why ({err})"
        if not held:
            return "no transaction holds them now: the group coordinator has not answered this member yet"
        why = f"an open transaction holds the committed offsets of {held}"
        overdue = self.config.transaction_timeout_ms / 1000 + HELD_PAST_TIMEOUT_SECONDS
        if waited < overdue:
            return why
        if self._reinitialised:
            try:
                kept_in = admin.offsets_partition_of(self._admin, self.processor.group_id)
            except KafkaUnavailableError:
                kept_in = None
            return (
                f"{why}, past the transaction timeout and not of this instance: a hanging transaction "
                "or another instance's with a longer timeout; its producer is among those of "
                f"__consumer_offsets partition {kept_in} (docs/processors.md, 'A hanging transaction')"
            )
        self._reinitialised = True
        log.warning(
            "%s for %.0f s, past the transaction timeout: re-initialising the transactional "
            "producer %r, which aborts a transaction of its id the broker still holds",
            why,
            waited,
            self._transactional_id,
        )
        if self.in_transaction:  # its outputs would be aborted with it: read them again
            self._abort_quietly()
            self._rewind = True
        try:
            self._replace_producer(bounded=True)
        except ProducerFencedError as err:  # e.g. the holder is still completing: wait on
            log.warning("could not re-initialise the transactional producer: %s", err)
            return f"{why}; re-initialising the producer failed ({err})"
        return f"{why}; the producer was re-initialised"

    def release(self, consumer: Consumer, partitions: Sequence[Partition]) -> None:
        """Revoked: commit the open transaction now, while this member still owns them. Only the
        inputs handled are committed (the consumer may have taken records it will not hand over)."""
        if self.in_transaction:
            self._commit(offsets=dict(self._done))
        for tp in partitions:
            self.committed.pop(tp, None)

    def lose(self, consumer: Consumer, partitions: Sequence[Partition]) -> None:
        """Lost: another member may own them already. Abort, and read what is left from the
        committed offsets (the records of this consume are dropped)."""
        log.warning("partitions lost %s: aborting the open transaction", sorted(partitions))
        self._abort_quietly()
        for tp in partitions:
            self.committed.pop(tp, None)
        self._rewind = True
        self._renew_producer = True

    # -- the loop --------------------------------------------------------------------------------

    def _handle(self, records: Sequence[Message]) -> None:
        if self._rewind_if_asked():
            return  # these records were fetched before the rewind: read again from the committed offsets
        producer = self.producer
        assert producer is not None
        if self._open_since is None:
            transactions.begin(producer)
            self._open_since = time.monotonic()
        sent = 0
        try:
            for message in records:
                outcome = self.handler.handle(message)
                sent += self._send(producer, message, outcome)
                self._done[where(message)] = (message.offset() or 0) + 1
        except TransactionAbortedError as err:
            log.warning("%s; aborting, reading again from the committed offsets", err)
            self._abort_quietly()
            self._rewind = True
            return
        except ProducerFencedError as err:
            if not err.replaceable:
                raise
            self._replace_producer(err)
            self._rewind = True
            return
        finally:
            self._outputs.inc(sent)
        self._inputs += len(records)
        self._processed.inc(len(records))
        if self._inputs >= self.config.transaction_records or self._due():
            self._commit()

    def _send(self, producer: Producer, message: Message, outcome: Outcome) -> int:
        """Produce the outcome of `message`: its outputs, or its dead letter; returns how many outputs."""
        if outcome.failure is not None:
            topic = self.config.dead_letter_topic.replace("{topic}", message.topic() or "")
            headers = dead_letter_headers(
                message, self.processor.name, outcome.failure, outcome.attempts, "processor"
            )
            self._produce(producer, topic, message.key(), message.value(), headers)
            self._dead_lettered.inc()
            log_dead_letter(message, topic, outcome)
            return 0
        for output in outcome.outputs:
            record = self.outbox.record(output)
            self._produce(producer, record.topic, record.key, record.value, record.headers)
        return len(outcome.outputs)

    @staticmethod
    def _produce(
        producer: Producer, topic: str, key: bytes | None, value: bytes | None, headers: Any
    ) -> None:
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=headers)
                return
            except BufferError:  # the queue is full: let deliveries drain it
                producer.poll(0.05)
            except KafkaException as err:  # fatal (fenced), or the transaction must abort
                error = err.args[0]
                if error.fatal():
                    raise ProducerFencedError(
                        f"the transactional producer cannot go on ({error.str()}): another instance "
                        "took over or the broker fenced it",
                        replaceable=transactions.replaceable(error),
                    ) from err
                raise TransactionAbortedError(f"cannot produce to {topic!r}: {error.str()}") from err

    def _turn(self) -> None:
        self._rewind_if_asked()
        if self.in_transaction and self._due():
            self._commit()
        elif not self.in_transaction and time.monotonic() - self._last_idle_commit > IDLE_COMMIT_SECONDS:
            self._last_idle_commit = time.monotonic()
            self._commit_passed_positions()
        if self.health is not None:
            self.health.beat("ok", partitions=[f"{t}[{p}]" for t, p in sorted(self.group.positions)])

    def _stopping(self) -> None:
        """Commit what is open, or else the positions past markers (so a stopped processor that
        handled everything shows no lag)."""
        if self.in_transaction:
            self._commit(final=True)
        else:
            self._commit_passed_positions()

    def _wait(self) -> float:
        """How long a consume may wait for records: not past the open transaction's due time."""
        wait = min(0.1, self.config.transaction_ms / 1000)
        if self._open_since is None:
            return wait
        left = self._open_since + self.config.transaction_ms / 1000 - time.monotonic()
        return max(0.0, min(wait, left))

    def _due(self) -> bool:
        return self._open_since is not None and (
            (time.monotonic() - self._open_since) * 1000 >= self.config.transaction_ms
        )

    def _positions(self) -> dict[Partition, int]:
        """Where the consumer stands on each owned partition: past every record it handed over
        (all handled, outside a consume) and past markers and aborted records after them."""
        consumer = self.group.consumer
        owned = self.group.positions
        if time.monotonic() - self._rewound_at < SEEK_SETTLE_SECONDS:
            owned = {tp: n for tp, n in owned.items() if tp in self._done}
        if consumer is None or not owned:
            return {}
        asked = consumer.position([TopicPartition(*tp) for tp in owned])
        return {(p.topic, p.partition): p.offset for p in asked if p.offset >= 0}

    def _commit_passed_positions(self) -> None:
        """An offsets-only transaction when the consumer moved past what is committed (markers)."""
        ahead = {tp: at for tp, at in self._positions().items() if at > self.committed.get(tp, -1)}
        if ahead and self.producer is not None:
            transactions.begin(self.producer)
            self._open_since = time.monotonic()
            self._commit(offsets=ahead)

    def _commit(self, *, offsets: Mapping[Partition, int] | None = None, final: bool = False) -> None:
        """Commit the open transaction with `offsets` (default: the handled inputs and the
        consumer's positions); on failure abort it and rewind every owned partition."""
        if self._open_since is None or self.producer is None or self.group.consumer is None:
            return
        if offsets is None:
            offsets = {**self._done, **self._positions()}
            for tp, done in self._done.items():  # a position is never behind what was handled
                offsets[tp] = max(offsets[tp], done)
        started = self._open_since
        try:
            # Past the transaction timeout the broker aborts it anyway: no use waiting longer.
            timeout = self.config.transaction_timeout_ms / 1000
            transactions.commit(self.producer, self.group.consumer, offsets, timeout=timeout)
        except (TransactionAbortedError, KafkaUnavailableError, ProducerFencedError) as err:
            if isinstance(err, ProducerFencedError):
                if not err.replaceable:
                    raise
                self._replace_producer(err)
            self.metrics.transactions.labels(self.processor.name, "aborted").inc()
            log.warning("transaction aborted (%s); reading again from the committed offsets", err)
            self._closed()
            # Rewound by the loop (`_turn` follows every batch), never from inside a rebalance.
            self._rewind = not final
            return
        self.metrics.transactions.labels(self.processor.name, "committed").inc()
        self.metrics.transaction_seconds.labels(self.processor.name).observe(time.monotonic() - started)
        owned = self.group.positions
        self.committed.update({tp: n for tp, n in offsets.items() if tp in owned})
        self.group.advance(offsets)
        self._closed()

    def _closed(self) -> None:
        self._open_since = None
        self._done.clear()
        self._inputs = 0

    def _rewind_if_asked(self) -> bool:
        if not self._rewind:
            return False
        self._rewind = False
        owned = self.group.positions
        back = {tp: self.committed[tp] for tp in owned if tp in self.committed}
        log.info("rewinding to the committed offsets %s", sorted(back.items()))
        self.group.rewind(back)
        self._rewound_at = time.monotonic()
        return True

    def _abort_quietly(self, *, going_on: bool = True) -> None:
        """Abort the open transaction; `going_on` (the instance goes on): while Kafka does not
        answer, keep trying for twice the transaction timeout (no other transaction can begin
        before this one ended), then go on with a new producer; stopping: 10 s."""
        if self._open_since is None or self.producer is None:
            return
        try:
            patience = 2 * self.config.transaction_timeout_ms / 1000  # then a new producer aborts it
            transactions.abort(self.producer, timeout=10, patience=patience if going_on else None)
        except ProducerFencedError as err:
            if going_on and err.replaceable:
                self._replace_producer(err)
            else:  # fenced or gone: the broker aborts it at its timeout
                log.warning("could not abort the open transaction: %s", err)
        except Exception as err:
            log.warning("could not abort the open transaction: %s", err)
        self.metrics.transactions.labels(self.processor.name, "aborted").inc()
        self._closed()

    def _new_producer(self) -> Producer:
        """A producer of this instance's transactional.id, its transactions initialised (which
        fences and aborts whatever an earlier producer of the id left open)."""
        return clients.transactional_producer(
            self.kafka,
            self._transactional_id,
            transaction_timeout_ms=self.config.transaction_timeout_ms,
            settings=dict(self.config.producer_settings),
        )

    def _replace_producer(self, failure: ProducerFencedError | None = None, *, bounded: bool = False) -> None:
        """Go on with a new producer of the same transactional.id: the old one failed without
        anyone taking over (`failure`, replaceable), or a transaction of the id outlived its
        timeout. What the old one held is aborted by the new one's init_transactions (or was
        aborted by the broker); the inputs are read again from the committed offsets. While
        Kafka does not answer this is tried until it does; `bounded` (inside a claim, which has a
        timeout of its own): for three transaction timeouts, then ProducerFencedError."""
        if failure is not None:
            log.warning("the transactional producer failed (%s): replacing it", failure)
        told = time.monotonic() + self.config.transaction_timeout_ms / 1000 * 3
        while True:  # a new producer each time: one made while Kafka was away may keep its state
            try:
                self.producer = self._new_producer()
                break
            except KafkaException as err:
                error = err.args[0]
                if not error.retriable() or (bounded and time.monotonic() >= told):
                    raise ProducerFencedError(f"cannot replace the transactional producer: {err}") from err
                if time.monotonic() >= told:  # while Kafka is away: no other way on
                    told = float("inf")
                    log.warning(
                        "cannot make a transactional producer yet (%s); trying until Kafka answers", err
                    )
                time.sleep(0.5)
        self._closed()
