"""What the relay refuses at start instead of retrying forever: settings that can never work.

Kafka or PostgreSQL being down heals, so the relay waits for them (degraded, backing off). A typo
in a librdkafka property or a database that does not exist does not: retried, it would fail the
same way forever while /healthz says "degraded" and nobody reads why.
"""

from __future__ import annotations

import re

import psycopg

from outbox.errors import ConfigurationError
from outbox.urls import postgres_problem
from outboxkit.kafka import clients
from outboxkit.kafka.settings import KafkaSettings
from relay.errors import RelayConfigurationError
from relay.publisher import producer_config
from relay.settings import RelaySettings

PRODUCER_SOURCE = "the relay's producer settings (OUTBOX_RELAY_PRODUCER, or producer in the config's [relay])"
MISSING_DATABASE = re.compile(r'database "[^"]*" does not exist')


def check_producer_settings(kafka: KafkaSettings, settings: RelaySettings) -> None:
    """RelayConfigurationError when librdkafka does not take the relay's producer settings."""
    try:
        clients.check_producer_config(
            clients.producer_config(kafka, producer_config(settings)), PRODUCER_SOURCE
        )
    except ConfigurationError as err:
        raise RelayConfigurationError(str(err)) from err


def refuse_missing_database(url: str, err: Exception) -> None:
    """RelayConfigurationError when `err` says the database of `url` does not exist. PostgreSQL
    reports it before a session exists, with no SQLSTATE on the client's side, so its message is
    matched (the server's English wording)."""
    if isinstance(err, psycopg.OperationalError) and MISSING_DATABASE.search(str(err)):
        raise RelayConfigurationError(
            f"{postgres_problem(url, err)}: create the database, or correct OUTBOX_DATABASE_URL "
            "(or database_url in the config file)"
        ) from err
