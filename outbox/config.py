"""Settings shared by every component, read from OUTBOX_... environment variables (CLI flags override)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class OutboxSettings(BaseSettings):
    """Where the toolkit's services are. Defaults are the local stack's (stack/stack, docker-compose.yml)."""

    model_config = SettingsConfigDict(env_prefix="OUTBOX_", frozen=True)

    database_url: str = "postgresql://outbox:outbox@127.0.0.1:5432/outbox"
    """PostgreSQL holding the outbox table (and, for the demo, domain rows and read models)."""

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    """Kafka brokers, comma-separated host:port."""

    connect_url: str = "http://127.0.0.1:8083"
    """Kafka Connect's REST API, for the CDC relay."""
