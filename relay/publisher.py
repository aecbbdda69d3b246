"""Publishing a batch to Kafka: the port and its two implementations (idempotent, transactional).

Contract of `Publisher.publish(batch)`: records are produced in batch order; the result says which
ids Kafka acknowledged (`delivered`), which failed for good (`poisoned`, with the reason: too large,
not authorised, invalid), and why the rest must be retried after a back-off (`retry`). The caller
deletes/marks only delivered ids; the rest stays in the outbox and is read again. Not thread-safe:
one relay loop drives a publisher.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from confluent_kafka import KafkaError, KafkaException, Producer

from outbox.envelope import KafkaRecord
from outboxkit.kafka import clients
from outboxkit.kafka.settings import KafkaSettings
from relay.errors import ProducerFailedError
from relay.progress import ProgressLog
from relay.settings import RelaySettings

# Errors no retry can fix: the event is quarantined with the reason and the relay goes on.
PERMANENT_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_EXCEPTION,
        KafkaError._INVALID_ARG,
    }
)

Batch = Sequence[tuple[int, KafkaRecord]]


@dataclass
class BatchResult:
    delivered: list[int] = field(default_factory=list)
    poisoned: list[tuple[int, str]] = field(default_factory=list)
    retry: str | None = None
    """Why the undelivered rest must wait (e.g. Kafka unavailable); None: read it again at once."""


class Publisher(Protocol):
    def publish(self, batch: Batch) -> BatchResult: ...

    def recover(self) -> list[int]:
        """Ids Kafka has that PostgreSQL may not have finished (after a crash); [] if unknowable."""
        ...

    def close(self) -> None: ...


def describe(error: KafkaError) -> str:
    return f"{error.name()}: {error.str()}"


def producer_config(settings: RelaySettings) -> dict[str, Any]:
    """The relay's own producer settings, on top of the shared layer's (outboxkit.kafka.clients:
    idempotent, acks=all, Kafka's Java partitioner, which Kafka Connect's producer uses too, so an
    aggregate lands on the same partition whichever relay publishes it)."""
    return {
        "message.timeout.ms": settings.message_timeout_ms,
        "linger.ms": 5,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": max(100_000, 2 * settings.batch_size),
        **settings.producer,
    }


def _recorder(outcome: list[Any], i: int) -> Callable[[KafkaError | None, Any], None]:
    def record(err: KafkaError | None, _msg: Any) -> None:
        outcome[i] = err

    return record


def produce_all(producer: Producer, batch: Batch, outcome: list[Any]) -> None:
    """Produce in order; outcome[i] becomes None (acked) or a KafkaError via the delivery callback."""
    for i, (_, record) in enumerate(batch):
        callback = _recorder(outcome, i)
        while True:
            try:
                producer.produce(
                    record.topic,
                    record.value,
                    record.key,
                    headers=cast(Any, record.headers),
                    on_delivery=callback,
                )
                break
            except BufferError:
                producer.poll(0.05)  # local queue full: serve delivery reports, then retry
            except KafkaException as err:
                outcome[i] = err.args[0]
                break


PENDING = object()
"""An outcome slot whose delivery report has not come yet. Test outcomes with `is` or isinstance:
`KafkaError == PENDING` raises inside the C extension (it tries to read `PENDING` as an error
code) and surfaces later as a SystemError that killed the relay."""


def failure(outcome: Sequence[Any]) -> KafkaError | None:
    """The first error among the outcomes, if any."""
    return next((err for err in outcome if isinstance(err, KafkaError)), None)


def sort_outcome(batch: Batch, outcome: list[Any], isolate: Callable[[Batch], BatchResult]) -> BatchResult:
    """Turn per-record outcomes into a BatchResult; permanent failures are re-tried alone to find
    the culprit (a broker may fail a whole request for one bad record)."""
    result = BatchResult()
    suspects: list[tuple[int, KafkaRecord]] = []
    for (event_id, record), err in zip(batch, outcome, strict=True):
        if err is None:
            result.delivered.append(event_id)
        elif err is PENDING:
            result.retry = result.retry or "Kafka did not acknowledge in time"
        elif err.code() in PERMANENT_ERRORS:
            suspects.append((event_id, record))
        else:
            result.retry = result.retry or describe(err)
    if suspects:
        alone = isolate(suspects)
        result.delivered += alone.delivered
        result.poisoned += alone.poisoned
        result.retry = result.retry or alone.retry
    return result


def alone(outcome: Any) -> KafkaError | None:
    """The outcome of a record sent alone and flushed: no report in time is a (transient) time-out,
    so the record is retried after a back-off, not poisoned."""
    return KafkaError(KafkaError._TIMED_OUT) if outcome is PENDING else cast(KafkaError | None, outcome)


def unless_purged(attempt: Callable[[], KafkaError | None], attempts: int = 3) -> KafkaError | None:
    """`attempt()` again, up to `attempts` times in all, while it fails with _PURGE_QUEUE: the
    transaction after an aborted one may lose its records to the abort's purge of the queue (seen
    after a broker refusal), which is not the record's fault."""
    err: KafkaError | None = None
    for _attempt in range(attempts):
        err = attempt()
        if err is None or err.code() != KafkaError._PURGE_QUEUE:
            return err
    return err


def transaction_outcome(
    batch: Batch, outcome: Sequence[Any], aborted: str | None, isolate: Callable[[Batch], BatchResult]
) -> BatchResult:
    """What a batch published in one transaction comes to: all delivered if it committed
    (`aborted` None). An aborted transaction made nothing visible to read_committed consumers:
    if a record failed for a permanent reason, the records are re-sent alone to find the culprit
    (`isolate`); otherwise all of them are retried after a back-off, for the reason of the abort."""
    if aborted is None:
        return BatchResult(delivered=[event_id for event_id, _ in batch])
    if any(isinstance(err, KafkaError) and err.code() in PERMANENT_ERRORS for err in outcome):
        return isolate(batch)
    return BatchResult(retry=aborted)


def isolate_each(batch: Batch, send_one: Callable[[int, KafkaRecord], KafkaError | None]) -> BatchResult:
    """Send suspects one at a time, in order; a record that fails alone for good is poison.

    Nothing after the first failure is sent: those records stay in the outbox, neither delivered
    nor poisoned, and are read again next turn (after a back-off if the failure was transient),
    when the quarantine (keyed by aggregate, which a record does not carry) holds a poisoned
    aggregate's later events and lets the rest flow. So no later event of the failed record's
    aggregate overtakes it, whatever topic it goes to.
    """
    result = BatchResult()
    for event_id, record in batch:
        err = send_one(event_id, record)
        if err is None:
            result.delivered.append(event_id)
        elif err.code() in PERMANENT_ERRORS:
            result.poisoned.append((event_id, describe(err)))
            break
        else:
            result.retry = describe(err)
            break
    return result


class IdempotentPublisher:
    """At least once, in order per partition (idempotent producer, acks=all)."""

    def __init__(self, kafka: KafkaSettings | str, settings: RelaySettings) -> None:
        self.settings = settings
        self.producer = clients.producer(kafka, producer_config(settings))
        self.flush_timeout = settings.message_timeout_ms / 1000 + 5

    def publish(self, batch: Batch) -> BatchResult:
        outcome: list[Any] = [PENDING] * len(batch)
        produce_all(self.producer, batch, outcome)
        self.producer.flush(self.flush_timeout)
        return sort_outcome(batch, outcome, lambda suspects: isolate_each(suspects, self._send_one))

    def _send_one(self, _event_id: int, record: KafkaRecord) -> KafkaError | None:
        outcome: list[Any] = [PENDING]
        produce_all(self.producer, [(0, record)], outcome)
        self.producer.flush(self.flush_timeout)
        return alone(outcome[0])

    def recover(self) -> list[int]:
        return []

    def close(self) -> None:
        self.producer.flush(self.flush_timeout)


class TransactionalPublisher:
    """Exactly once for read_committed consumers: one shard's batch + its progress record per
    Kafka transaction, under transactional.id `<group>-shard-<n>`: a new owner's
    init_transactions() fences a zombie owner and aborts its open transaction."""

    def __init__(
        self, kafka: KafkaSettings | str, settings: RelaySettings, shard: int, progress: ProgressLog
    ) -> None:
        self.kafka = KafkaSettings.of(kafka)
        self.settings = settings
        self.shard = shard
        self.progress = progress
        self.timeout = settings.transaction_timeout_ms / 1000
        self.producer = self._new_producer()

    def _new_producer(self) -> Producer:
        return clients.transactional_producer(
            self.kafka,
            f"{self.progress.group}-shard-{self.shard}",
            transaction_timeout_ms=self.settings.transaction_timeout_ms,
            settings=producer_config(self.settings),
        )

    def recover(self) -> list[int]:
        return self.progress.last_batch(self.shard)

    def publish(self, batch: Batch) -> BatchResult:
        # The rest of a batch whose progress record would be too large stays in the outbox.
        batch = batch[: self.progress.fitting([event_id for event_id, _ in batch])]
        outcome: list[Any] = [PENDING] * len(batch)
        aborted = self._in_transaction(batch, outcome)
        return transaction_outcome(batch, outcome, aborted, self._isolate)

    def _isolate(self, batch: Batch) -> BatchResult:
        """One transaction per record. The outbox learns of the delivered ones only after the loop,
        so each transaction's progress record names every record delivered alone so far: a crash
        in between is recovered in full, and none of them is published twice."""
        delivered: list[int] = []

        def send_one(event_id: int, record: KafkaRecord) -> KafkaError | None:
            def attempt() -> KafkaError | None:
                outcome: list[Any] = [PENDING]
                aborted = self._in_transaction([(event_id, record)], outcome, also_done=delivered)
                if aborted is None:
                    delivered.append(event_id)
                    return None
                return failure(outcome) or KafkaError(KafkaError._FAIL, aborted)

            return unless_purged(attempt)

        return isolate_each(batch, send_one)

    def _in_transaction(self, batch: Batch, outcome: list[Any], also_done: Sequence[int] = ()) -> str | None:
        """Produce `batch` and its progress record (naming the batch and `also_done`) in one
        transaction; None if committed, else why it was aborted."""
        try:
            self.producer.begin_transaction()
            produce_all(self.producer, batch, outcome)
            failed = failure(outcome)
            if failed is not None:
                raise KafkaException(failed)
            self.producer.produce(
                self.progress.topic,
                self.progress.record(self.shard, [*also_done, *(event_id for event_id, _ in batch)]),
                self.progress.key(self.shard),
                partition=self.progress.partition(self.shard),
            )
            self.producer.commit_transaction(self.timeout)
            return None
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            self._abort(error)
            return describe(error)

    def _abort(self, error: KafkaError) -> None:
        if not error.fatal():
            try:
                self.producer.abort_transaction(self.timeout)
                return
            except KafkaException as exc:
                error = exc.args[0]
        # Fatal (fenced by a newer owner of the shard, ...) or not abortable: this producer is done.
        # The relay loop decides whether it still owns the shard before making a new one, so a
        # fenced zombie never fences the new owner back.
        raise ProducerFailedError(f"shard {self.shard}: {describe(error)}")

    def close(self) -> None:
        self.producer.flush(self.timeout)
