"""Consume-transform-produce transactions (KIP-447): a transactional producer's outputs and a
consumer group's input positions commit together, or neither does.

`send_offsets_to_transaction` is given the consumer's group metadata (group, generation, member):
the group coordinator refuses the offsets of a member the group has gone on without, so a zombie
(paused past its session timeout, its partitions given to another member) cannot commit, and its
outputs are aborted with its transaction, whatever its `transactional.id`.

What a failed call means is decided here, once, from librdkafka's error flags:
- retriable: the same call may be made again (a coordinator moving, a timeout);
- requires abort: abort the transaction, rewind the inputs to the committed offsets, go on;
- anything else (fenced producer, a fatal error): this producer can do nothing more.

A call that does not return at all (librdkafka can block in a transactional call past its timeout)
ends the process: see `hang_guard`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from outbox.errors import OutboxError
from outboxkit.kafka.errors import KafkaUnavailableError, StopRequestedError
from outboxkit.kafka.records import Partition

log = logging.getLogger(__name__)

HUNG_EXIT_STATUS = 75
"""Exit status of a process ended by `hang_guard` (EX_TEMPFAIL: starting it again recovers)."""
HANG_MARGIN_SECONDS = 5.0
"""How long past its own timeout a call may block before it counts as hung."""


@contextmanager
def hang_guard(what: str, seconds: float) -> Iterator[None]:
    """End the process (status 75) when the block has not finished `seconds` after it began.

    librdkafka's transactional calls can block past their timeout, for good, when a coordinator
    went away under them: a coordinator request's timeout is never checked, and the request is
    tried again only on a broker state change that may never come (librdkafka issues #5456 and
    #5511; seen here in send_offsets_to_transaction when the only broker restarted). Such a call
    cannot be interrupted, and its producer can neither be used nor closed meanwhile, so the
    process ends itself at once, as kill -9 would end it: nothing the open transaction held
    becomes visible (the broker aborts it at the transaction timeout, or the restarted
    instance's init_transactions at once), and whoever supervises the process starts it again.
    """
    done = threading.Event()

    def watch() -> None:
        if not done.wait(seconds):
            log.critical(
                "%s did not return in %.1f s: the Kafka client hangs (librdkafka issues #5456, "
                "#5511); the process exits with status %d so that a restart recovers, and nothing "
                "of the open transaction becomes visible",
                what,
                seconds,
                HUNG_EXIT_STATUS,
            )
            os._exit(HUNG_EXIT_STATUS)

    threading.Thread(target=watch, name=f"hang-guard {what}", daemon=True).start()
    try:
        yield
    finally:
        done.set()


class TransactionAbortedError(OutboxError):
    """The open transaction cannot commit and was aborted: nothing in it is visible; read the inputs
    again from the committed offsets (`committed_offsets`)."""


class ProducerFencedError(OutboxError):
    """Another producer with this `transactional.id` took over, or the producer failed for good:
    this producer can do nothing more. `replaceable`: nobody else took over (e.g. the broker
    aborted a transaction that outlived its timeout while it was down, and the producer's state
    no longer matches the coordinator's): a new producer of the same `transactional.id` may go on;
    otherwise this instance must stop (a newer instance of it runs)."""

    def __init__(self, message: str, *, replaceable: bool = False) -> None:
        super().__init__(message)
        self.replaceable = replaceable


FENCING_CODES = frozenset(
    {
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    }
)
"""Errors that say another producer took over (or this one may not produce): never replaced."""


def replaceable(error: KafkaError) -> bool:
    """Whether a producer that failed with `error` may be replaced by a new one of its id."""
    return error.code() not in FENCING_CODES


WAIT_SLICE_SECONDS = 1.0
"""A wait that a stop may end is made of requests this long: librdkafka's calls do not return
before their timeout, and a signal handler runs only between them."""

WAIT_REPORT_SECONDS = 10.0
"""How often a long wait for committed offsets is logged again."""


def committed_offsets(
    consumer: Consumer,
    partitions: Sequence[Partition],
    timeout: float = 30.0,
    *,
    cancelled: Callable[[], bool] | None = None,
    watch: Callable[[float], str] | None = None,
) -> dict[Partition, int]:
    """The group's committed next offset of each partition (0 where none is committed). A
    read_committed consumer asks with `require_stable`: while a transaction holding offsets for
    the group is open, the answer waits for it to end, so nothing in flight is read as committed.

    `cancelled`: asked every WAIT_SLICE_SECONDS while the answer waits; once it says yes,
    StopRequestedError is raised (a stop need not wait for an open transaction to end).
    `watch`: called with the seconds waited each time the wait is logged (after a second, then
    every WAIT_REPORT_SECONDS); says why the answer waits (it may act on it), for the log and for
    the error at the timeout."""
    listed = [TopicPartition(t, p) for t, p in partitions]
    started = time.monotonic()
    deadline = started + timeout
    told = 0.0
    why = "a transaction holding offsets of the group is open, or Kafka does not answer"
    while True:
        left = deadline - time.monotonic()
        wait = left if cancelled is None else min(left, WAIT_SLICE_SECONDS)
        try:
            found = consumer.committed(listed, timeout=max(wait, 0.001))
            break
        except KafkaException as err:
            error: KafkaError = err.args[0]
            sliced = cancelled is not None and error.code() == KafkaError._TIMED_OUT
            if cancelled is not None and cancelled():
                raise StopRequestedError(
                    f"stop asked while waiting for the committed offsets of {list(partitions)}"
                ) from err
            if time.monotonic() >= deadline or not (error.retriable() or _unstable(error) or sliced):
                waited = time.monotonic() - started
                raise KafkaUnavailableError(
                    f"cannot read the committed offsets of {list(partitions)} (waited {waited:.0f} s): "
                    f"{err}" + (f"; {why}" if told else "")
                ) from err
            waited = time.monotonic() - started
            if waited >= told:  # once at first, then every WAIT_REPORT_SECONDS
                told = waited + WAIT_REPORT_SECONDS
                if watch is not None:
                    why = watch(waited)
                log.info(
                    "waiting for the committed offsets of %s for %.0f s (%s): %s",
                    sorted(partitions),
                    waited,
                    error.str(),
                    why,
                )
            if not sliced:
                time.sleep(0.2)
    return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in found}


def _unstable(error: KafkaError) -> bool:
    return error.code() == KafkaError.UNSTABLE_OFFSET_COMMIT


def commit(
    producer: Producer,
    consumer: Consumer,
    offsets: Mapping[Partition, int],
    *,
    timeout: float = 30.0,
) -> None:
    """Add `offsets` (the next offset to read, per input partition) to the open transaction with
    the consumer's group metadata, and commit it.

    Raises TransactionAbortedError after aborting when the transaction cannot commit (e.g. the
    group went on without this member), ProducerFencedError when the producer cannot go on, and
    KafkaUnavailableError when Kafka kept timing out (the transaction is then aborted too).
    """
    listed = [TopicPartition(t, p, n) for (t, p), n in sorted(offsets.items())]
    try:
        if listed:
            _retrying(
                "send_offsets_to_transaction",
                lambda: producer.send_offsets_to_transaction(
                    listed, consumer.consumer_group_metadata(), timeout
                ),
                timeout,
            )
        _retrying("commit_transaction", lambda: producer.commit_transaction(timeout), timeout)
    except KafkaException as err:
        raise _failed(producer, err, "commit", timeout) from err


def abort(producer: Producer, *, timeout: float = 30.0, patience: float | None = None) -> None:
    """Abort the open transaction (what it produced is never visible to read_committed readers).

    `patience`: while Kafka does not answer (retriable errors, e.g. a broker restarting), try
    again for that many seconds instead of `timeout`: the producer can begin no other
    transaction before this one ended. Past it the error is a replaceable ProducerFencedError: a
    producer that keeps timing out after the broker is back may hold a coordinator that went
    away (librdkafka #5456), and a new producer of its transactional.id aborts the transaction
    through its init_transactions."""
    try:
        _retrying(
            "abort_transaction", lambda: producer.abort_transaction(timeout), timeout, patience=patience
        )
    except KafkaException as err:
        raise ProducerFencedError(
            f"cannot abort the transaction: {err}", replaceable=replaceable(err.args[0])
        ) from err


def begin(producer: Producer) -> None:
    try:
        producer.begin_transaction()
    except KafkaException as err:
        raise ProducerFencedError(
            f"cannot begin a transaction: {err}", replaceable=replaceable(err.args[0])
        ) from err


def _retrying(
    what: str, call: Callable[[], object], timeout: float, *, patience: float | None = None
) -> None:
    """Call until it does not fail with a retriable error, for at most `patience` seconds
    (default: `timeout`). Each call is given `timeout`: one that blocks well past it ends the
    process (`hang_guard`)."""
    started = time.monotonic()
    deadline = started + (timeout if patience is None else patience)
    extended = patience is not None and patience > timeout  # its waits are logged
    told = False
    while True:
        try:
            with hang_guard(what, timeout + HANG_MARGIN_SECONDS):
                call()
            return
        except KafkaException as err:
            error: KafkaError = err.args[0]
            now = time.monotonic()
            if not error.retriable() or now >= deadline:
                if extended and now - started > timeout:
                    log.warning("%s: Kafka did not answer for %.0f s; giving up", what, now - started)
                raise
            if extended and not told and now - started >= timeout:
                told = True
                log.warning(
                    "%s: Kafka does not answer (%s); trying for up to %.0f s", what, error.str(), patience
                )
            time.sleep(0.1)


def _failed(producer: Producer, err: KafkaException, what: str, timeout: float) -> OutboxError:
    error: KafkaError = err.args[0]
    if error.txn_requires_abort() or error.retriable():
        abort(producer, timeout=timeout, patience=2 * timeout)
        kind = TransactionAbortedError if error.txn_requires_abort() else KafkaUnavailableError
        return kind(f"the transaction could not {what} and was aborted: {error.str()}")
    return ProducerFencedError(
        f"the transactional producer cannot go on ({error.name()}: {error.str()}): another instance "
        "with its transactional.id took over, or it failed for good",
        replaceable=replaceable(error),
    )
