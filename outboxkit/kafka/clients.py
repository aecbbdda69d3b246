"""Factories of every Kafka client of the toolkit: each starts from `KafkaSettings.client_config()`
(brokers, login, TLS, sockets), adds the defaults of its kind, then the component's own settings.

The defaults say what the toolkit's guarantees rest on: producers are idempotent with acks=all and
partition keys as Kafka's Java clients do (murmur2), so a key lands on the same partition whoever
produced it (the polling relay, Debezium in Kafka Connect, a KV writer); consumers read committed
records only and never commit on their own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from outbox.errors import ConfigurationError
from outboxkit.kafka.settings import KafkaSettings

ClientSettings = Mapping[str, Any]

LIBRDKAFKA_LOG = logging.getLogger("librdkafka")
"""librdkafka's own log lines (connection failures, authentication errors...), handed to Python's
logging instead of written to stderr, so every daemon's log is one JSON stream. They are delivered
while the client is polled (consume, poll, flush; `served()` for admin clients)."""

PRODUCER_DEFAULTS: Mapping[str, Any] = {
    "enable.idempotence": True,  # also: acks=all, in-order retries without duplicates
    "acks": "all",
    # Kafka's Java partitioner (murmur2 of the key), as Kafka Connect's producer uses: an aggregate
    # lands on the same partition whichever component publishes it (librdkafka's default,
    # consistent_random, hashes with CRC32: other partitions).
    "partitioner": "murmur2_random",
}

CONSUMER_DEFAULTS: Mapping[str, Any] = {
    "isolation.level": "read_committed",  # aborted transactions are never seen
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
}


def producer(kafka: KafkaSettings | str, settings: ClientSettings | None = None) -> Producer:
    """An idempotent producer (acks=all, murmur2 partitioner); `settings` add to or override that."""
    return Producer(producer_config(kafka, settings))


def producer_config(kafka: KafkaSettings | str, settings: ClientSettings | None = None) -> dict[str, Any]:
    return {
        **KafkaSettings.of(kafka).client_config(),
        "logger": LIBRDKAFKA_LOG,
        **PRODUCER_DEFAULTS,
        **(settings or {}),
    }


def check_producer_config(config: ClientSettings, source: str) -> None:
    """Refuse, with ConfigurationError naming `source` (where the settings came from), producer
    settings librdkafka does not take: an unknown property, a value it refuses. Making a client
    checks its whole configuration before any network traffic, so this failure is permanent and
    retrying it would only repeat it; the client made for the check is dropped unused."""
    try:
        made = Producer(dict(config))
    except KafkaException as err:
        said = err.args[0].str() if err.args and hasattr(err.args[0], "str") else str(err)
        raise ConfigurationError(f"{source}: librdkafka refuses the producer settings: {said}") from err
    made.flush(0)


TRANSACTIONAL_DEFAULTS: Mapping[str, Any] = {
    # A transaction's AddOffsetsToTxn / AddPartitionsToTxn right after the previous commit is
    # answered CONCURRENT_TRANSACTIONS until the broker has written the markers (a few ms), and
    # librdkafka retries it after retry.backoff.ms: its default, 100 ms, made that wait most of a
    # short transaction (send_offsets_to_transaction p50 88 ms with 100 ms transactions, 11 ms
    # with 10 ms). Retries back off exponentially from here to retry.backoff.max.ms (1 s).
    "retry.backoff.ms": 10,
}


def transactional_producer(
    kafka: KafkaSettings | str,
    transactional_id: str,
    *,
    transaction_timeout_ms: int = 60_000,
    settings: ClientSettings | None = None,
    init_timeout: float | None = None,
) -> Producer:
    """A producer with `transactional.id`, its transactions initialised: making it fences every
    earlier producer of the same id (a zombie) and aborts the transaction that one left open."""
    config = {**producer_config(kafka), **TRANSACTIONAL_DEFAULTS, **(settings or {})}
    config["transactional.id"] = transactional_id
    config["transaction.timeout.ms"] = transaction_timeout_ms
    made = Producer(config)
    made.init_transactions(transaction_timeout_ms / 1000 if init_timeout is None else init_timeout)
    return made


def consumer(kafka: KafkaSettings | str, group_id: str, settings: ClientSettings | None = None) -> Consumer:
    """A consumer of group `group_id` that reads committed records only and commits nothing on
    its own; `settings` add to or override that (components fix what their guarantees need)."""
    return Consumer(consumer_config(kafka, group_id, settings))


def consumer_config(
    kafka: KafkaSettings | str, group_id: str, settings: ClientSettings | None = None
) -> dict[str, Any]:
    return {
        **KafkaSettings.of(kafka).client_config(),
        "logger": LIBRDKAFKA_LOG,
        "group.id": group_id,
        **CONSUMER_DEFAULTS,
        **(settings or {}),
    }


def admin(kafka: KafkaSettings | str, settings: ClientSettings | None = None) -> AdminClient:
    """An admin client (topics, configs, watermarks through a consumer)."""
    config: dict[str, Any] = {**KafkaSettings.of(kafka).client_config(), "logger": LIBRDKAFKA_LOG}
    return AdminClient({**config, **(settings or {})})


def served(client: AdminClient) -> AdminClient:
    """Deliver the admin client's queued log lines (it has no consume or flush that would)."""
    client.poll(0)
    return client
