"""`KVWriter`: puts and deletes (tombstones) on a compacted topic, each returning its version.

Contract: a call returns once Kafka has the record (acks=all) and names it by its version
(partition, offset), which a reader's `wait_for` accepts. Writers are not thread-safe: one per
thread, or a lock around them. With `transactional_id` the writer is the single writer of its
store: making a second writer with the same id fences the first (its next write raises
WriterFencedError), so two owners are never silently interleaved; `put_many` is then atomic.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from outbox.event import TOMBSTONE
from outbox.serialization import JsonSerializer, Serializer
from outboxkit.kafka import clients
from outboxkit.kafka.settings import KafkaSettings
from outboxkit.kv.errors import InvalidKeyError, KVWriteError, WriterFencedError
from outboxkit.kv.topic import CompactionSettings, ensure_compacted_topic
from outboxkit.kv.values import encode_value

Version = tuple[int, int]
"""(partition, offset) of a record on the store's topic."""


def encoded_key(key: object) -> bytes:
    if not isinstance(key, str) or not key:
        raise InvalidKeyError(f"a KV key must be non-empty text (str), not {key!r}")
    return key.encode()


class KVWriter:
    """Writes one KV store's topic, making it compacted (with `compaction`) when it is missing."""

    def __init__(
        self,
        topic: str,
        *,
        kafka: KafkaSettings | str,
        partitions: int = 3,
        compaction: CompactionSettings | None = None,
        serializer: Serializer | None = None,
        transactional_id: str | None = None,
        create: bool = True,
        settings: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> None:
        """`partitions` and `compaction` apply when the topic is made; an existing topic is
        checked (TopicConfigError unless compacted). `settings`: extra producer settings."""
        self.topic = topic
        self.timeout = timeout
        self.serializer = serializer or JsonSerializer()
        self.transactional_id = transactional_id
        admin = clients.admin(kafka)
        ensure_compacted_topic(
            admin,
            topic,
            partitions=partitions,
            compaction=compaction or CompactionSettings(),
            create=create,
            timeout=timeout,
        )
        self._producer: Producer = (
            clients.transactional_producer(kafka, transactional_id, settings=settings, init_timeout=timeout)
            if transactional_id is not None
            else clients.producer(kafka, settings)
        )

    def put(self, key: str, value: Any) -> Version:
        """Set `key` to `value` (bytes as they are, else serialized, JSON by default)."""
        return self.put_many([(key, value)])[0]

    def delete(self, key: str) -> Version:
        """Delete `key`: a tombstone (null value), which compaction keeps for delete.retention.ms."""
        return self.put_many([(key, TOMBSTONE)])[0]

    def put_many(self, items: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> list[Version]:
        """Write several keys (TOMBSTONE deletes one), in order; one version each. Every item is
        checked before anything is sent. Transactional: all or nothing."""
        pairs = list(items.items() if isinstance(items, Mapping) else items)
        records: list[tuple[bytes, bytes | None, list[tuple[str, str | bytes | None]]]] = []
        for key, value in pairs:
            data, headers = (None, []) if value is TOMBSTONE else encode_value(value, self.serializer)
            records.append((encoded_key(key), data, headers))
        if not records:
            return []
        transactional = self.transactional_id is not None
        try:
            if transactional:
                self._producer.begin_transaction()
            versions = self._send(records)
            if transactional:
                self._producer.commit_transaction(self.timeout)
        except KafkaException as err:
            raise self._failure(err, transactional) from err
        except KVWriteError:
            if transactional:
                self._abort()
            raise
        return versions

    def _send(
        self, records: list[tuple[bytes, bytes | None, list[tuple[str, str | bytes | None]]]]
    ) -> list[Version]:
        results: list[Message | KafkaError | None] = [None] * len(records)

        def delivered(index: int) -> Any:
            def report(error: KafkaError | None, message: Message) -> None:
                results[index] = error if error is not None else message

            return report

        for index, (key, data, headers) in enumerate(records):
            while True:
                try:
                    self._producer.produce(
                        self.topic, data, key, headers=headers, on_delivery=delivered(index)
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    self._producer.poll(0.1)
        remaining = self._producer.flush(self.timeout)
        versions: list[Version] = []
        for (key, _data, _headers), result in zip(records, results, strict=True):
            if isinstance(result, KafkaError):
                raise KafkaException(result)
            if result is None:
                raise KVWriteError(
                    f"Kafka did not confirm the write of key {key.decode()!r} to {self.topic!r} in"
                    f" {self.timeout:g} s ({remaining} records still queued); check that Kafka is"
                    " reachable, then write again (a put of the same value is harmless)"
                )
            versions.append((result.partition() or 0, result.offset() or 0))
        return versions

    def _failure(self, err: KafkaException, transactional: bool) -> KVWriteError:
        error = err.args[0] if err.args else None
        if isinstance(error, KafkaError) and error.code() in (
            KafkaError._FENCED,
            KafkaError.PRODUCER_FENCED,
            KafkaError.INVALID_PRODUCER_EPOCH,
        ):
            return WriterFencedError(
                f"the KV writer {self.transactional_id!r} of {self.topic!r} is fenced: another writer"
                " with the same transactional.id started, and it owns the store now. Stop this one"
            )
        if transactional:
            self._abort()
        return KVWriteError(
            f"Kafka refused a write to {self.topic!r}: {err}; nothing of it was committed"
            if transactional
            else f"Kafka refused a write to {self.topic!r}: {err}; write again once the cause is fixed"
        )

    def _abort(self) -> None:
        # nothing open, or the producer is gone: the broker aborts it on timeout
        with contextlib.suppress(KafkaException):
            self._producer.abort_transaction(self.timeout)

    def close(self) -> None:
        """Deliver what is still queued."""
        self._producer.flush(self.timeout)

    def __enter__(self) -> KVWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
