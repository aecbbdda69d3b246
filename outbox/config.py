"""Settings shared by every component, read from OUTBOX_... environment variables (CLI flags override)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from outbox.errors import ConfigurationError
from outbox.routing import TopicRouter
from outbox.urls import libpq_url, mask_url

__all__ = [
    "KAFKA_DEFAULT_MAX_RECORD_BYTES",
    "OutboxSettings",
    "Retention",
    "mask_url",
    "settings_error",
]

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

    # hide_input_in_errors: a ValidationError printed as it is must not show a URL's password;
    # load() renders its own message, with the inputs that are safe to show.
    model_config = SettingsConfigDict(env_prefix="OUTBOX_", frozen=True, hide_input_in_errors=True)

    database_url: str = "postgresql://outbox:outbox@127.0.0.1:5432/outbox"
    """PostgreSQL holding the outbox table (and, for the demo, domain rows and read models): a
    `postgresql://`, `postgres://` or `postgresql+psycopg://` URL or libpq's `key=value` form, kept
    in the form psycopg connects with (outbox.urls.sqlalchemy_url gives SQLAlchemy's)."""

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

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        return libpq_url(value)  # ConfigurationError is a ValueError: pydantic reports it

    @classmethod
    def load(cls, **overrides: object) -> OutboxSettings:
        """Read the environment (CLI flags as `overrides` win), raising ConfigurationError when invalid."""
        try:
            return cls(**overrides)  # type: ignore[arg-type]
        except (ValidationError, SettingsError) as err:
            raise settings_error(cls, err, "check the OUTBOX_... environment variables and flags") from None


def settings_error(
    cls: type[BaseSettings], err: ValidationError | SettingsError, hint: str
) -> ConfigurationError:
    """A ConfigurationError listing each invalid setting with its environment variable, what is
    wrong and the value given, but never a password: URLs are masked, secret fields not shown.

    Raise it `from None`: the chained pydantic error would print the inputs again.
    """
    prefix = cls.model_config.get("env_prefix", "")
    if isinstance(err, SettingsError):  # a value the environment source cannot parse (bad JSON)
        return ConfigurationError(f"invalid {cls.__name__} ({hint}):\n  {_unparsable(prefix, err)}")
    lines = []
    for error in err.errors():
        loc = [str(part) for part in error["loc"]]
        name = f"{'.'.join(loc)} ({prefix}{loc[0].upper()})" if loc else cls.__name__
        message = mask_url(error["msg"].removeprefix("Value error, "))
        # Our validators' messages (value_error) quote what they need; pydantic's own do not.
        shown = "" if error["type"] == "value_error" else _shown(loc, error.get("input"))
        lines.append(f"  {name}: {message}{shown}")
    return ConfigurationError(f"invalid {cls.__name__} ({hint}):\n" + "\n".join(lines))


_UNPARSABLE = re.compile(r'error parsing value for field "(?P<field>\w+)"')


def _unparsable(prefix: str, err: SettingsError) -> str:
    """`field (VARIABLE): is not valid JSON (why); give a JSON object...` for pydantic-settings'
    "error parsing value for field ..." (a complex field's variable is read as JSON), which names
    neither the variable nor what was wrong with it."""
    found = _UNPARSABLE.search(str(err))
    if found is None:
        return mask_url(str(err))
    field = found["field"]
    cause = err.__cause__ or err.__context__
    why = f" ({cause})" if cause is not None else ""
    return (
        f"{field} ({prefix}{field.upper()}): is not valid JSON{why}; this variable is read as JSON,"
        """ e.g. '{"key": "value"}' for a mapping"""
    )


def _shown(loc: list[str], value: Any) -> str:
    """`, got <value>` for a field's plain value; nothing for secrets, mappings and whole models."""
    secret = any(word in part.lower() for part in loc for word in ("password", "secret"))
    if not loc or secret or not isinstance(value, str | int | float | bool):
        return ""
    return f", got {mask_url(repr(value))}"
