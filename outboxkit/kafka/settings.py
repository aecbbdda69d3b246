"""How every Kafka client of the toolkit reaches and logs in to the cluster: one settings model.

`KafkaSettings` is read from OUTBOX_KAFKA_... variables (CLI flags override) and turned into the
librdkafka settings that every producer, consumer and admin client starts from
(`client_config()`): brokers, security protocol, SASL, TLS and socket settings. A component adds
only what is its own (acks, group.id, isolation.level...) on top, through `outboxkit.kafka.clients`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from outbox.config import settings_error

CONNECTION_PREFIXES = (
    "security.",
    "sasl.",
    "ssl.",
    "enable.ssl.",
    "ssl_engine.",
    "socket.",
    "broker.address.",
    "client.dns.",
    "client.id",
    "connections.max.idle.ms",
    "reconnect.backoff.",
    "api.version.",
    "broker.version.fallback",
    "https.",
)
"""librdkafka settings of how to reach and log in to the cluster, shared by every client type."""

SECRET_KEYS = ("sasl.password", "ssl.key.password", "ssl.keystore.password", "sasl.oauthbearer.client.secret")


def is_connection_setting(key: str) -> bool:
    return key.startswith(CONNECTION_PREFIXES)


def connection_settings(client: Mapping[str, Any]) -> dict[str, str]:
    """Of a Kafka client's settings, those that say how to reach and log in to the cluster."""
    return {key: str(value) for key, value in client.items() if is_connection_setting(key)}


SecurityProtocol = Literal["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"]


class KafkaSettings(BaseSettings):
    """The cluster every component talks to. Every field has an OUTBOX_KAFKA_<NAME> variable."""

    model_config = SettingsConfigDict(env_prefix="OUTBOX_KAFKA_", frozen=True, hide_input_in_errors=True)

    bootstrap_servers: str = Field(default="127.0.0.1:9092", min_length=1)
    """Brokers, comma-separated host:port (the local stack's by default)."""

    security_protocol: SecurityProtocol | None = None
    """plaintext, ssl, sasl_plaintext or sasl_ssl (librdkafka `security.protocol`); unset: plaintext."""

    sasl_mechanism: str | None = None
    """PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER or GSSAPI (`sasl.mechanism`)."""

    sasl_username: str | None = None
    """User of SASL PLAIN/SCRAM (`sasl.username`)."""

    sasl_password: SecretStr | None = None
    """Password of SASL PLAIN/SCRAM (`sasl.password`); never printed."""

    ssl_ca_location: str | None = None
    """File or directory of CA certificates the brokers' certificates are checked against."""

    ssl_certificate_location: str | None = None
    """Client certificate (PEM) for mutual TLS."""

    ssl_key_location: str | None = None
    """Client private key (PEM) for mutual TLS."""

    ssl_key_password: SecretStr | None = None
    """Password of the client's private key; never printed."""

    connection: dict[str, str] = Field(default_factory=dict)
    """Any other librdkafka connection setting (JSON object in the environment), e.g.
    {"socket.keepalive.enable": "true", "ssl.endpoint.identification.algorithm": "none"}. Only
    settings of how to reach and log in to the cluster belong here: they go to every client."""

    @field_validator("connection")
    @classmethod
    def _only_connection_settings(cls, value: dict[str, str]) -> dict[str, str]:
        others = sorted(key for key in value if not is_connection_setting(key))
        if others:
            raise ValueError(
                f"{others} are not connection settings (security, SASL, TLS, sockets): they would go "
                "to every producer, consumer and admin client; set them in the component's own "
                "settings instead (e.g. OUTBOX_RELAY_PRODUCER for the relay's producer)"
            )
        return {key: str(v) for key, v in value.items()}

    @classmethod
    def load(cls, **overrides: Any) -> KafkaSettings:
        """Read the environment (flags as `overrides` win; None: not given), raising
        ConfigurationError that names each bad OUTBOX_KAFKA_... variable."""
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        except (ValidationError, SettingsError) as err:
            raise settings_error(cls, err, "check the OUTBOX_KAFKA_... environment variables") from None

    @classmethod
    def of(cls, kafka: KafkaSettings | str) -> KafkaSettings:
        """`kafka` as settings: a plain string names brokers reached without a login."""
        if isinstance(kafka, KafkaSettings):
            return kafka
        return cls.model_construct(bootstrap_servers=kafka)

    def with_connection(self, extra: Mapping[str, Any]) -> KafkaSettings:
        """These settings plus the connection settings among `extra` (a component's own librdkafka
        settings: what in them says how to reach the cluster applies to all of its clients)."""
        found = connection_settings(extra)
        if not found:
            return self
        return self.model_copy(update={"connection": {**self.connection, **found}})

    def client_config(self) -> dict[str, str]:
        """The librdkafka settings every client starts from, secrets included: hand them to a
        client, never print them (`describe()` is for people)."""
        named = {
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password.get_secret_value() if self.sasl_password else None,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": self.ssl_key_password.get_secret_value() if self.ssl_key_password else None,
        }
        config = {"bootstrap.servers": self.bootstrap_servers, **self.connection}
        config.update({key: value for key, value in named.items() if value is not None})
        return config

    def describe(self) -> str:
        """One line for logs and status pages: brokers, protocol and user, never a secret."""
        config = self.client_config()
        shown = {k: ("***" if k in SECRET_KEYS else v) for k, v in config.items() if k != "bootstrap.servers"}
        extras = " ".join(f"{k}={v}" for k, v in sorted(shown.items()))
        return f"{self.bootstrap_servers}" + (f" ({extras})" if extras else "")
