"""The polling relay's settings: OUTBOX_RELAY_... environment variables, a TOML file, CLI flags."""

from __future__ import annotations

import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from outbox.config import OutboxSettings, settings_error
from outbox.errors import ConfigurationError
from outbox.routing import topic_problem
from outboxkit.kafka.settings import connection_settings

T = TypeVar("T", bound=BaseSettings)


__all__ = [
    "RelayMode",
    "RelaySettings",
    "connection_settings",
    "layered",
    "load_settings",
    "read_config_file",
]


class RelayMode(StrEnum):
    """How the relay talks to Kafka."""

    IDEMPOTENT = "idempotent"
    """enable.idempotence + acks=all: at least once, in order; a crash may publish a batch twice."""

    TRANSACTIONAL = "transactional"
    """Each batch and the relay's progress in one Kafka transaction: exactly once for read_committed."""


class RelaySettings(BaseSettings):
    """Knobs of `outbox relay run`. Every field has an OUTBOX_RELAY_<NAME> environment variable."""

    model_config = SettingsConfigDict(env_prefix="OUTBOX_RELAY_", frozen=True, hide_input_in_errors=True)

    mode: RelayMode = RelayMode.IDEMPOTENT
    """idempotent (at least once) or transactional (exactly once for read_committed consumers)."""

    group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,100}$")
    """Relays of one group share the work; names the locks, transactional ids and progress records.
    Unset: `outbox-<database>-<hash>`, derived from the outbox's cluster, database and table
    (relay/identity.py), so two services never share a group by accident."""

    batch_size: int = Field(default=4000, ge=1, le=100_000)
    """Events read and published per batch: bounds the relay's memory whatever the backlog. Each batch
    costs two round trips and one wait for Kafka's acks, so larger batches drain faster (bench:
    300k events, medians of 3: 1,000 -> 47k/s, 2,000 -> 52k/s, 4,000 -> 54k/s); a batch is only
    as large as the backlog, so this does not delay a quiet outbox."""

    poll_interval: float = Field(default=1.0, gt=0, le=300)
    """Seconds between polls when idle; NOTIFY wakes the relay sooner. A missed NOTIFY costs this much."""

    shards: int = Field(default=1, ge=1, le=1024)
    """Aggregates are split into this many key-hash shards, each published by one relay at a time."""

    max_shards_per_instance: int = Field(default=0, ge=0)
    """0: a fair share of the shards among the live relays of the group; else at most this many."""

    message_timeout_ms: int = Field(default=30_000, ge=1000)
    """How long the producer retries one record before the relay backs off and re-reads the batch."""

    transaction_timeout_ms: int = Field(default=60_000, ge=1000)
    """transaction.timeout.ms of the transactional producer (broker aborts a stuck transaction)."""

    progress_topic: str = "outbox-relay-progress"
    """Transactional mode: compacted topic with each shard's last published batch (KIP-618 style)."""

    max_backoff: float = Field(default=5.0, gt=0)
    """Upper bound of the back-off (seconds) while Kafka or PostgreSQL is unavailable."""

    purge_interval: float = Field(default=60.0, gt=0)
    """Seconds between purges of published rows older than the retention under retention=keep."""

    purge_chunk: int = Field(default=10_000, ge=1, le=1_000_000)
    """Rows one purge statement deletes at most, so each is a short transaction."""

    metrics_host: str = "127.0.0.1"
    """Address of the relay's /metrics, /healthz and /status.json."""

    metrics_port: int = Field(default=9465, ge=0, le=65535)
    """Port of /metrics, /healthz and /status.json; 0 disables them."""

    stale_after: float = Field(default=30.0, gt=0, le=3600)
    """/healthz answers 503 when the relay's loop has not turned for this many seconds (a hung
    call); at least 3 poll intervals are allowed whatever this says."""

    producer: dict[str, str] = Field(default_factory=dict)
    """Extra librdkafka producer settings (JSON object in the environment), e.g. {"linger.ms": "5"}.
    The cluster's login belongs in OUTBOX_KAFKA_... (outboxkit.kafka.KafkaSettings); connection
    settings given here (security, SASL, TLS, sockets) still go to every Kafka client of the relay."""

    @property
    def connection(self) -> dict[str, str]:
        """The settings of `producer` that every Kafka client of the relay needs to reach the
        cluster (security protocol, SASL, TLS, sockets): the admin clients and the progress reader
        get them too. Producer-only settings (acks, linger.ms, ...) stay with the producer."""
        return connection_settings(self.producer)

    @field_validator("progress_topic")
    @classmethod
    def _a_topic_name(cls, value: str) -> str:
        problem = topic_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


SECTIONS = ("kafka", "relay", "cdc", "gateway", "processor", "projector")
"""Tables of the config file besides the top level: `[kafka]` (outboxkit.kafka's KafkaSettings),
`[relay]` (RelaySettings), `[cdc]` (CdcSettings), `[gateway]`, `[processor]` and `[projector]`
(the options of `outbox gateway run`, `outbox processor run` and `outbox projector run`)."""


def read_config_file(config_file: Path | None) -> dict[str, dict[str, Any]]:
    """The TOML file by section: "" holds the top-level OutboxSettings keys, "relay" and "cdc" their
    tables. One file serves `outbox relay` and `outbox cdc`; each reads its own section."""
    if config_file is None:
        return {"": {}, **{name: {} for name in SECTIONS}}
    try:
        values = tomllib.loads(config_file.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigurationError(f"cannot read the config file {config_file}: {err}") from err
    sections = {name: values.pop(name, {}) for name in SECTIONS}
    for name, table in sections.items():
        if not isinstance(table, dict):
            raise ConfigurationError(f"{config_file}: `{name}` must be a table ([{name}]), not a value")
    return {"": values, **sections}


def load_settings(config_file: Path | None = None, **flags: Any) -> tuple[OutboxSettings, RelaySettings]:
    """Settings with the precedence flags > environment > config file > defaults.

    The TOML file holds OutboxSettings keys at the top level and RelaySettings keys in `[relay]`.
    """
    file_values = read_config_file(config_file)
    relay_flags = {k[len("relay_") :]: v for k, v in flags.items() if k.startswith("relay_")}
    outbox_flags = {k: v for k, v in flags.items() if not k.startswith("relay_")}
    return (
        layered(OutboxSettings, file_values[""], outbox_flags),
        layered(RelaySettings, file_values["relay"], relay_flags),
    )


def layered(cls: type[T], file_values: dict[str, Any], flags: dict[str, Any]) -> T:
    """cls from flags (None: not given) > its environment variables > file values > defaults."""
    unknown = sorted(set(file_values) - set(cls.model_fields))
    if unknown:
        raise ConfigurationError(f"unknown {cls.__name__} keys in the config file: {unknown}")
    try:
        from_env = cls()
        env_values = {name: getattr(from_env, name) for name in from_env.model_fields_set}
        values = {**file_values, **env_values, **{k: v for k, v in flags.items() if v is not None}}
        return cls(**values)
    except (ValidationError, SettingsError) as err:
        raise settings_error(cls, err, "check its OUTBOX_... variables, the config file and flags") from None
