"""A second, throw-away stack instance (own state dir and ports) for tests that stop services.

Stopping the shared stack would break every other test; an isolated broker or database can be
killed and restarted freely.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STACK = REPO / "stack" / "stack"

SASL_LOGIN = {
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanism": "PLAIN",
    "sasl.username": "outbox",
    "sasl.password": "outbox-secret",
}
"""The login of an isolated stack's SASL listener, as librdkafka settings."""
SASL_LOGIN_ENV = {
    "OUTBOX_KAFKA_SECURITY_PROTOCOL": "sasl_plaintext",
    "OUTBOX_KAFKA_SASL_MECHANISM": "PLAIN",
    "OUTBOX_KAFKA_SASL_USERNAME": "outbox",
    "OUTBOX_KAFKA_SASL_PASSWORD": "outbox-secret",
}
"""The same login as the toolkit's shared Kafka settings (outboxkit.kafka.KafkaSettings)."""


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports (all held open while chosen, so none is handed out twice)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


def run_stack(env: dict[str, str], *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(STACK), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


class IsolatedStack:
    def __init__(self, *, sasl: bool = False) -> None:
        self.state = REPO / ".stack" / f"isolated-{uuid.uuid4().hex[:8]}"
        self.env = dict(os.environ)
        self.env.update(
            {
                "OUTBOX_STACK_DIR": str(self.state),
                "OUTBOX_STACK_PG_PORT": str(free_port()),
                "OUTBOX_STACK_KAFKA_PORT": str(free_port()),
                "OUTBOX_STACK_CONTROLLER_PORT": str(free_port()),
                "OUTBOX_STACK_CONNECT_PORT": str(free_port()),
            }
        )
        if sasl:  # Kafka also listens for SASL/PLAIN clients (user outbox, password outbox-secret)
            self.env["OUTBOX_STACK_KAFKA_SASL_PORT"] = str(free_port())

    @property
    def database_url(self) -> str:
        return f"postgresql://outbox:outbox@127.0.0.1:{self.env['OUTBOX_STACK_PG_PORT']}/outbox"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.env['OUTBOX_STACK_KAFKA_PORT']}"

    @property
    def sasl_bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.env['OUTBOX_STACK_KAFKA_SASL_PORT']}"

    def up(self, *parts: str) -> subprocess.CompletedProcess[str]:
        args = ["up", "--only", ",".join(parts)] if parts else ["up"]
        return run_stack(self.env, *args)

    def down(self) -> subprocess.CompletedProcess[str]:
        return run_stack(self.env, "down")

    def kafka_tool(self, name: str, *args: str) -> str:
        """What one of Kafka's tools (`stack/stack kafka-tool`) prints about this broker."""
        done = run_stack(self.env, "kafka-tool", name, *args, timeout=120)
        return (done.stdout + done.stderr[-2000:]).strip()

    def log_lines(self, part: str, *containing: str, last: int = 40) -> list[str]:
        """The last `last` lines of a part's log that contain any of `containing`."""
        path = self.state / "logs" / f"{part}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return [line for line in lines if any(word in line for word in containing)][-last:]

    def remove(self) -> None:
        self.down()
        shutil.rmtree(self.state, ignore_errors=True)
