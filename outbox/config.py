"""Settings shared by every component, read from OUTBOX_... environment variables (CLI flags override)."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from outbox.errors import ConfigurationError
from outbox.routing import TopicRouter

# librdkafka's default `message.max.bytes` (the Python producer's limit) is 1,000,000 bytes and
# Kafka's broker default `message.max.bytes` is 1,048,588: a record of at most 1,000,000 bytes,
# key, value, headers and record framing included, passes both with the stock settings.
KAFKA_DEFAULT_MAX_RECORD_BYTES = 1_000_000


class Retention(StrEnum):
    """What the relay does with an event once Kafka has acknowledged it."""

    DELETE = "delete"
    """Delete the row at once (the lean default; Kafka keeps the history)."""

    KEEP = "keep"
    """Set `published_at` and delete the row `retention_days` later (replay from PostgreSQL)."""

    CDC_DELETE = "cdc_delete"
    """CDC relay only: publish() deletes each row in the transaction that inserted it. Debezium reads
    the insert from the WAL; the table stays empty. No replay from PostgreSQL (docs/cdc.md)."""


class OutboxSettings(BaseSettings):
    """Where the toolkit's services are. Defaults are the local stack's (stack/stack, docker-compose.yml)."""

    model_config = SettingsConfigDict(env_prefix="OUTBOX_", frozen=True)

    database_url: str = "postgresql://outbox:outbox@127.0.0.1:5432/outbox"
    """PostgreSQL holding the outbox table (and, for the demo, domain rows and read models)."""

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    """Kafka brokers, comma-separated host:port."""

    connect_url: str = "http://127.0.0.1:8083"
    """Kafka Connect's REST API, for the CDC relay."""

    source: str = Field(default="outboxkit", min_length=1, max_length=255)
    """CloudEvents `ce_source` of events that do not name their own: the producing service."""

    topic_template: str = "{aggregate_type}"
    """Kafka topic of an event, from `{aggregate_type}` and `{event_type}`; an event may override."""

    max_record_bytes: int = Field(default=KAFKA_DEFAULT_MAX_RECORD_BYTES, ge=1024)
    """Largest Kafka record publish() accepts: key + value + headers + framing (Kafka's 1 MB default)."""

    notify: bool = True
    """Send NOTIFY on `notify_channel` with each write, so an idle relay wakes at once (costs commits)."""

    notify_channel: str = Field(default="outbox_events", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    """PostgreSQL channel that publish() notifies and the relay listens on."""

    retention: Retention = Retention.DELETE
    """What happens to published rows: the relay deletes them, or keeps them `retention_days`;
    cdc_delete: publish() deletes them at once (CDC relay only)."""

    retention_days: int = Field(default=7, ge=1, le=3650)
    """With retention=keep: days a published row stays for replay before the relay deletes it."""

    @field_validator("topic_template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        TopicRouter(value)  # raises ConfigurationError (a ValueError for pydantic) when invalid
        return value

    @model_validator(mode="after")
    def _check_urls(self) -> Self:
        if not self.database_url.startswith("postgresql"):
            raise ValueError(f"database_url must be a postgresql:// URL, got {self.database_url!r}")
        return self

    @classmethod
    def load(cls, **overrides: object) -> OutboxSettings:
        """Read the environment (CLI flags as `overrides` win), raising ConfigurationError when invalid."""
        try:
            return cls(**overrides)  # type: ignore[arg-type]
        except ValidationError as err:
            raise ConfigurationError(
                f"invalid outbox settings (check the OUTBOX_... environment variables):\n{err}"
            ) from err
