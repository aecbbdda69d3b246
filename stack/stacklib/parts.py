"""The stack as a whole: start the parts in dependency order, overlapping their JVM/cluster start-up."""

from __future__ import annotations

import time
from collections.abc import Mapping

from .connect import Connect
from .kafka import Kafka
from .postgres import Postgres
from .settings import Settings, StackError

__all__ = ["PARTS", "Stack", "StackError"]

PARTS = ("postgres", "kafka", "connect")


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.postgres = Postgres(settings)
        self.kafka = Kafka(settings)
        self.connect = Connect(settings, self.kafka.libs)

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Stack:
        return cls(Settings.from_environment(env))

    def _parts(self) -> dict[str, Postgres | Kafka | Connect]:
        return {"postgres": self.postgres, "kafka": self.kafka, "connect": self.connect}

    def up(self, only: list[str]) -> None:
        began = time.monotonic()
        self.s.state_dir.mkdir(parents=True, exist_ok=True)
        (self.s.state_dir / ".gitignore").write_text("*\n")
        want = set(only)
        if "connect" in want:
            want.add("kafka")  # Connect keeps its state in Kafka topics
        # PostgreSQL and the broker start side by side; Connect needs an answering broker.
        if "postgres" in want:
            self.postgres.start()
        if "kafka" in want:
            self.kafka.start()
            self.kafka.wait()
            print(f"stack: kafka      ready at {self.s.bootstrap_servers}", flush=True)
        if "connect" in want:
            self.connect.start()
        if "postgres" in want:
            self.postgres.wait()
            print(f"stack: postgres   ready at {self.s.database_url}", flush=True)
        if "connect" in want:
            self.connect.wait()
            print(
                f"stack: connect    ready at {self.s.connect_url} (Debezium PostgreSQL plugin listed)",
                flush=True,
            )
        (self.s.state_dir / "stack.env").write_text(self.env_text())
        print(
            f"stack: up in {time.monotonic() - began:.1f}s; logs in {self.s.logs_dir}; "
            f"addresses: stack/stack env",
            flush=True,
        )

    def down(self) -> None:
        # Reverse order: Connect flushes its offsets to Kafka before the broker goes.
        for name in reversed(PARTS):
            part = self._parts()[name]
            stopped = part.down()
            print(f"stack: {name:<10} {'stopped' if stopped else 'was not running'}", flush=True)

    def status(self) -> bool:
        healthy = True
        for name, part in self._parts().items():
            pid = part.daemon.pid()
            reason = part.answer() if pid else "not running"
            healthy = healthy and reason is None
            state = "up" if reason is None else "DOWN"
            log = part.daemon.log_file
            print(f"{name:<10} {state:<5} pid={pid or '-':<8} {reason or 'answering'}   log: {log}")
        return healthy

    def logs(self, part: str | None, lines: int) -> None:
        for name, p in self._parts().items():
            if part in (None, name):
                print(f"==> {p.daemon.log_file} <==")
                print(p.daemon.tail(lines), end="")

    def env_text(self) -> str:
        return "".join(f"{k}={v}\n" for k, v in self.s.env_vars().items())
