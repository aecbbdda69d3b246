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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from outbox.errors import OutboxError
from outboxkit.kafka.errors import KafkaUnavailableError
from outboxkit.kafka.records import Partition


class TransactionAbortedError(OutboxError):
    """The open transaction cannot commit and was aborted: nothing in it is visible; read the inputs
    again from the committed offsets (`committed_offsets`)."""


class ProducerFencedError(OutboxError):
    """Another producer with this `transactional.id` took over, or the producer failed for good:
    this instance must stop producing (a newer instance of it runs)."""


def committed_offsets(
    consumer: Consumer, partitions: Sequence[Partition], timeout: float = 30.0
) -> dict[Partition, int]:
    """The group's committed next offset of each partition (0 where none is committed). A
    read_committed consumer asks with `require_stable`: while a transaction holding offsets for
    the group is open, the answer waits for it to end, so nothing in flight is read as committed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=timeout)
            break
        except KafkaException as err:
            error: KafkaError = err.args[0]
            if time.monotonic() >= deadline or not (error.retriable() or _unstable(error)):
                raise KafkaUnavailableError(
                    f"cannot read the committed offsets of {partitions}: {err}"
                ) from err
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
                lambda: producer.send_offsets_to_transaction(
                    listed, consumer.consumer_group_metadata(), timeout
                ),
                timeout,
            )
        _retrying(lambda: producer.commit_transaction(timeout), timeout)
    except KafkaException as err:
        raise _failed(producer, err, "commit") from err


def abort(producer: Producer, *, timeout: float = 30.0) -> None:
    """Abort the open transaction (what it produced is never visible to read_committed readers)."""
    try:
        _retrying(lambda: producer.abort_transaction(timeout), timeout)
    except KafkaException as err:
        raise ProducerFencedError(f"cannot abort the transaction: {err}") from err


def begin(producer: Producer) -> None:
    try:
        producer.begin_transaction()
    except KafkaException as err:
        raise ProducerFencedError(f"cannot begin a transaction: {err}") from err


def _retrying(call: Callable[[], object], timeout: float) -> None:
    """Call until it does not fail with a retriable error, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            call()
            return
        except KafkaException as err:
            error: KafkaError = err.args[0]
            if not error.retriable() or time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def _failed(producer: Producer, err: KafkaException, what: str) -> OutboxError:
    error: KafkaError = err.args[0]
    if error.txn_requires_abort() or error.retriable():
        abort(producer)
        kind = TransactionAbortedError if error.txn_requires_abort() else KafkaUnavailableError
        return kind(f"the transaction could not {what} and was aborted: {error.str()}")
    return ProducerFencedError(
        f"the transactional producer cannot go on ({error.name()}: {error.str()}): another instance "
        "with its transactional.id took over, or it failed for good; this instance stops"
    )
