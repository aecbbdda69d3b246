"""The gateway's settings: one frozen dataclass, checked when it is made."""

from __future__ import annotations

from dataclasses import dataclass, field

from outbox.errors import ConfigurationError

MIN_SECRET_BYTES = 32
"""HS256 keys shorter than the hash (32 bytes) are refused (RFC 7518, section 3.2)."""


@dataclass(frozen=True)
class GatewayConfig:
    """What one gateway process serves. Environment: OUTBOX_GATEWAY_... (see `outbox gateway run`)."""

    topics: tuple[str, ...]
    """The status topics to follow, every partition of each."""

    secret: str = field(repr=False)
    """HS256 key that tokens are signed with (shared with the app that issues them); never logged."""

    owner_field: str = "user_id"
    """Payload field naming the user an event belongs to: only that user's connections receive it."""

    subject_prefix: str = "job"
    """An event is on channel `<subject_prefix>:<ce_subject>` and on `user:<owner>`."""

    queue_size: int = 1000
    """Messages waiting for one connection; a client that lets more pile up is disconnected (4008)."""

    connect_timeout: float = 10.0
    """Seconds a client has to send its `connect` message after opening the socket."""

    ping_interval: float = 20.0
    """Seconds between WebSocket pings; a client that does not pong within as long is dropped."""

    max_subscriptions: int = 100
    """Channels one connection may subscribe to."""

    replay_timeout: float = 30.0
    """Seconds a resume's replay may wait for Kafka (to say where a partition begins, or to make
    progress reading the gap) before the gateway answers `recovered: false`."""

    partition_check_interval: float = 30.0
    """Seconds between looks at the topics' metadata for partitions added since the start."""

    def __post_init__(self) -> None:
        if not self.topics:
            raise ConfigurationError("the gateway needs at least one status topic (--topic)")
        if len(self.secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigurationError(
                f"the token secret must have at least {MIN_SECRET_BYTES} bytes (OUTBOX_GATEWAY_SECRET);"
                " make one with `openssl rand -hex 32`"
            )
        for name in ("queue_size", "max_subscriptions"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("connect_timeout", "ping_interval", "replay_timeout", "partition_check_interval"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive, not {getattr(self, name)}")
