"""Where the stack lives and which ports it uses; every value can be set by an OUTBOX_STACK_... variable."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

STACK_SRC = Path(__file__).resolve().parent.parent
REPO_ROOT = STACK_SRC.parent


class StackError(Exception):
    """A part of the stack cannot be installed or started; the message says why and what to do."""


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not a port number") from None
    if not 0 < value < 65536:
        raise StackError(f"{name}={value} is outside 1..65535")
    return value


@dataclass(frozen=True)
class Settings:
    """The stack's knobs. Defaults match docker-compose.yml so the same URLs work with either."""

    state_dir: Path  # OUTBOX_STACK_DIR: data, logs, pid files (default .stack/ in the checkout)
    cache_dir: Path  # OUTBOX_STACK_CACHE: resolved jars, shared by all clones (~/.cache/outboxkit)
    pg_port: int  # OUTBOX_STACK_PG_PORT (5432)
    kafka_port: int  # OUTBOX_STACK_KAFKA_PORT (9092)
    controller_port: int  # OUTBOX_STACK_CONTROLLER_PORT (9093)
    connect_port: int  # OUTBOX_STACK_CONNECT_PORT (8083)
    sasl_port: int | None  # OUTBOX_STACK_KAFKA_SASL_PORT: also a SASL/PLAIN listener (none by default)
    start_timeout: float  # OUTBOX_STACK_TIMEOUT: seconds a part may take to answer (180)
    db_name: str = "outbox"
    db_user: str = "outbox"
    db_password: str = "outbox"
    sasl_user: str = "outbox"
    sasl_password: str = "outbox-secret"

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Settings:
        cache_home = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        try:
            timeout = float(env.get("OUTBOX_STACK_TIMEOUT", "180"))
        except ValueError:
            raise StackError("OUTBOX_STACK_TIMEOUT must be a number of seconds") from None
        return cls(
            state_dir=Path(env.get("OUTBOX_STACK_DIR") or REPO_ROOT / ".stack").resolve(),
            cache_dir=Path(env.get("OUTBOX_STACK_CACHE") or cache_home / "outboxkit").resolve(),
            pg_port=_port(env, "OUTBOX_STACK_PG_PORT", 5432),
            kafka_port=_port(env, "OUTBOX_STACK_KAFKA_PORT", 9092),
            controller_port=_port(env, "OUTBOX_STACK_CONTROLLER_PORT", 9093),
            connect_port=_port(env, "OUTBOX_STACK_CONNECT_PORT", 8083),
            sasl_port=_port(env, "OUTBOX_STACK_KAFKA_SASL_PORT", 0)
            if env.get("OUTBOX_STACK_KAFKA_SASL_PORT")
            else None,
            start_timeout=timeout,
        )

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def database_url(self) -> str:
        return f"postgresql://{self.db_user}:{self.db_password}@127.0.0.1:{self.pg_port}/{self.db_name}"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def connect_url(self) -> str:
        return f"http://127.0.0.1:{self.connect_port}"

    def env_vars(self) -> dict[str, str]:
        """The addresses the toolkit, its tests and its demo read (OUTBOX_ prefix, as in outbox config)."""
        return {
            "OUTBOX_DATABASE_URL": self.database_url,
            "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "OUTBOX_CONNECT_URL": self.connect_url,
            "OUTBOX_STACK_DIR": str(self.state_dir),
        }

    def instance_tag(self) -> str:
        """A short tag unique to this state dir, used to recognise our own processes."""
        return hashlib.sha1(str(self.state_dir).encode()).hexdigest()[:10]
