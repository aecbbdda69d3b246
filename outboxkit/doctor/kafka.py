"""Checks Kafka answers: every client reaches the cluster with the login, transactions work,
topics are set up for what reads and writes them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException

from outbox.errors import OutboxError
from outboxkit.doctor.report import Check, failed, passed, warned
from outboxkit.kafka import admin, clients
from outboxkit.kafka.settings import KafkaSettings

LOGIN = (
    "check OUTBOX_KAFKA_BOOTSTRAP_SERVERS and, on a cluster that requires a login,"
    " OUTBOX_KAFKA_SECURITY_PROTOCOL"
    " and OUTBOX_KAFKA_SASL_... / OUTBOX_KAFKA_SSL_... (docs/kafka.md)"
)
DOCTOR_TRANSACTIONAL_ID = "outboxkit-doctor"
"""The id the transactions check initialises (one, reused: it leaves no open transaction)."""


def clients_reach_cluster(
    kafka: KafkaSettings, timeout: float, producer_settings: dict[str, Any]
) -> list[Check]:
    """An admin client, the relay's producer and a consumer, each built as the components build
    them, ask for the cluster's metadata: a login setting that reaches one but not another shows."""
    makers: dict[str, Callable[[], Any]] = {
        "admin": lambda: clients.admin(kafka),
        "producer": lambda: clients.producer(kafka.with_connection(producer_settings), producer_settings),
        "consumer": lambda: clients.consumer(kafka, "outboxkit-doctor"),
    }
    checks = []
    for kind, make in makers.items():
        name = f"kafka {kind}"
        started = time.monotonic()
        client = None
        try:
            client = make()
            brokers = len(client.list_topics(timeout=timeout).brokers)
        except (KafkaException, ValueError) as err:
            detail = f"{kafka.describe()}: {_kafka_error(err)}"
            checks.append(failed(name, detail, LOGIN))
        else:
            took = (time.monotonic() - started) * 1000
            checks.append(passed(name, f"{kafka.describe()}: {brokers} broker(s) answered in {took:.0f} ms"))
        finally:
            if client is not None and hasattr(client, "close"):
                client.close()
    return checks


def transactions(kafka: KafkaSettings, timeout: float) -> list[Check]:
    """The broker's transaction settings, then a real `init_transactions()`: what the
    transactional relay and the processors need (and a login's right to a transactional id)."""
    checks = []
    client = clients.admin(kafka)
    try:
        brokers = sorted(client.list_topics(timeout=timeout).brokers)
        config = admin.broker_config(client, brokers[0], timeout=timeout)
    except (KafkaException, OutboxError) as err:
        return [
            failed("kafka transactions", f"cannot read the broker's settings: {_kafka_error(err)}", LOGIN)
        ]
    factor = int(config.get("transaction.state.log.replication.factor", "3"))
    min_isr = int(config.get("transaction.state.log.min.isr", "2"))
    if factor > len(brokers):
        detail = (
            f"transaction.state.log.replication.factor={factor} but the cluster has {len(brokers)} broker(s)"
        )
        fix = f"set transaction.state.log.replication.factor (and min.isr) to at most {len(brokers)}"
        return [failed("kafka transactions", detail + ": the transaction log cannot be created", fix)]
    if min_isr > factor:
        fix = f"set transaction.state.log.min.isr to at most {factor}"
        return [
            failed(
                "kafka transactions",
                f"transaction.state.log.min.isr={min_isr} > replication factor {factor}",
                fix,
            )
        ]
    started = time.monotonic()
    try:
        producer = clients.transactional_producer(
            kafka, DOCTOR_TRANSACTIONAL_ID, transaction_timeout_ms=10_000, init_timeout=timeout
        )
    except KafkaException as err:
        fix = (
            "check the broker's log; with ACLs, allow the login to write transactional ids"
            " (the relay's are <group>-shard-<n>)"
        )
        return [failed("kafka transactions", f"init_transactions() failed: {_kafka_error(err)}", fix)]
    producer.flush(0)
    took = (time.monotonic() - started) * 1000
    detail = f"init_transactions() in {took:.0f} ms; transaction log replication {factor}, min.isr {min_isr}"
    checks.append(passed("kafka transactions", detail))
    if len(brokers) == 1:
        checks.append(
            warned(
                "kafka replication",
                "a single broker: a broker loss stops every client",
                "fine for development; run 3 or more brokers in production",
            )
        )
    return checks


def topic(kafka: KafkaSettings, name: str, timeout: float, *, compacted: bool = False) -> list[Check]:
    """Partitions, replication against min.insync.replicas (acks=all), and compaction for a KV topic."""
    label = f"topic {name}"
    client = clients.admin(kafka)
    try:
        # All topics' metadata, not the one topic's: asking for a topic by name creates it on a
        # broker with auto.create.topics.enable, and a check must not change what it checks.
        metadata = client.list_topics(timeout=timeout).topics.get(name)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            reason = metadata.error.str() if metadata is not None and metadata.error else "does not exist"
            fix = "create it (KVWriter and the relay create theirs), or name the right topic"
            return [failed(label, reason, fix)]
        config = admin.topic_config(client, name, timeout=timeout)
    except (KafkaException, OutboxError) as err:
        return [failed(label, _kafka_error(err), LOGIN)]
    partitions = len(metadata.partitions)
    replicas = min(len(p.replicas) for p in metadata.partitions.values())
    min_isr = int(config.get("min.insync.replicas", "1"))
    checks = []
    detail = f"{partitions} partition(s), replication {replicas}, min.insync.replicas {min_isr}"
    if min_isr > replicas:
        fix = f"lower min.insync.replicas to at most {replicas}, or raise the topic's replication"
        checks.append(failed(label, detail + ": every acks=all write is refused", fix))
    elif replicas > 1 and min_isr == 1:
        fix = "set min.insync.replicas=2 so an acknowledged event survives a broker loss"
        checks.append(warned(label, detail + ": one replica may acknowledge alone", fix))
    else:
        checks.append(passed(label, detail))
    if compacted:
        policy = config.get("cleanup.policy", "delete")
        if "compact" not in policy.split(","):
            fix = (
                f"kafka-configs.sh --alter --entity-type topics --entity-name {name}"
                " --add-config cleanup.policy=compact"
            )
            checks.append(
                failed(
                    f"{label} compaction",
                    f"cleanup.policy={policy}: old values are deleted by age, not compacted by key",
                    fix,
                )
            )
        else:
            retention = config.get("delete.retention.ms", "?")
            checks.append(
                passed(f"{label} compaction", f"cleanup.policy={policy}, delete.retention.ms={retention}")
            )
    return checks


def _kafka_error(err: Exception) -> str:
    first = err.args[0] if err.args else err
    return first.str() if hasattr(first, "str") else str(first)
