"""A real gateway (`outbox gateway run` as a child process), status events written to real Kafka
in transactions, and raw WebSocket clients (the `websockets` library's synchronous client) that ask
for batched frames unless told not to, and hand out one message at a time."""

from __future__ import annotations

import collections
import contextlib
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from websockets.sync.client import ClientConnection, connect

from outbox.envelope import encode, render_time
from outboxkit.gateway import issue_token
from tests.daemons import healthy
from tests.isolated import free_ports

REPO = Path(__file__).resolve().parents[3]
SECRET = "gateway-test-secret-" + "x" * 32


class StatusWriter:
    """Writes status events as the relay would publish them (envelope headers, key = job id), each
    batch in one Kafka transaction; remembers where each landed."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.topic = topic
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                "transactional.id": f"gateway-test-{uuid.uuid4().hex[:8]}",
                "partitioner": "murmur2_random",
            }
        )
        self.producer.init_transactions(30)

    def write(self, *events: tuple[str, str, dict[str, Any]]) -> list[tuple[int, int]]:
        """(job, user, data) each -> its (partition, offset), once committed."""
        landed: list[tuple[int, int]] = [(-1, -1)] * len(events)

        def report(index: int) -> Callable[[Any, Any], None]:
            def done(err: Any, msg: Any) -> None:
                assert err is None, err
                landed[index] = (msg.partition(), msg.offset())

            return done

        self.producer.begin_transaction()
        for index, (job, user, data) in enumerate(events):
            payload = orjson.dumps({"user_id": user, "job_id": job, **data})
            record = encode(
                str(uuid.uuid4()),
                "import.progress",
                "tests",
                render_time(_now()),
                "import_job",
                job,
                self.topic,
                "application/json",
                payload,
                None,
                None,
            )
            self.producer.produce(
                record.topic,
                key=record.key,
                value=record.value,
                headers=record.headers,
                on_delivery=report(index),
            )
        self.producer.commit_transaction(30)
        self.producer.flush(30)
        return landed


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


@dataclass
class Gateway:
    """`outbox gateway run` as a child process."""

    bootstrap_servers: str
    topic: str
    log: Path
    extra: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    """More environment variables for the gateway process."""
    topic_flag: bool = True
    """Name the topic with --topic (False: the config file in `extra` names it)."""
    port: int = 0
    metrics_port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    clients: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    def start(self) -> Gateway:
        if not self.port:
            self.port, self.metrics_port = free_ports(2)
        command = [
            sys.executable,
            "-m",
            "outboxkit",
            "gateway",
            "run",
            *(("--topic", self.topic) if self.topic_flag else ()),
            "--port",
            str(self.port),
            "--metrics-port",
            str(self.metrics_port),
            *self.extra,
        ]
        env = {
            "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "OUTBOX_GATEWAY_SECRET": SECRET,
            "PATH": "/usr/bin:/bin",
            **self.env,
        }
        with open(self.log, "ab") as stderr:
            self.proc = subprocess.Popen(command, env=env, cwd=REPO, stderr=stderr, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not (healthy(self.metrics_port) and self._listening()):
            assert self.proc.poll() is None, f"the gateway exited: {self.log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"the gateway did not start: {self.log.read_text()[-2000:]}"
            time.sleep(0.1)
        return self

    def _listening(self) -> bool:
        import socket

        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def wait_for_live(self, landed: list[tuple[int, int]], timeout: float = 20.0) -> None:
        """Wait until the gateway's live stream has passed every (partition, offset) in `landed`
        (so a resume afterwards finds the whole gap behind the live point)."""
        from tests.daemons import http_json

        deadline = time.monotonic() + timeout
        while True:
            _status, about = http_json(self.port, "/")
            live = {(topic, partition): offset for topic, partition, offset in about["positions"]}
            if all(live.get((self.topic, p), 0) > o for p, o in landed):
                return
            assert time.monotonic() < deadline, f"the gateway stays at {live}, short of {landed}"
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)

    def client(self, token: str | None, *, batch: bool = True, **options: Any) -> Client:
        """A connected client (the `connect` message sent when `token` is given; with `batch`, it
        asks for batched frames)."""
        ws = self.clients.enter_context(connect(self.url, open_timeout=10, **options))
        if token is not None:
            ws.send(orjson.dumps({"type": "connect", "token": token, "batch": batch}).decode())
        return Client(ws)


class Client:
    """A raw client whose `recv` hands out one message (encoded) at a time, also from a frame that
    holds a JSON array of them; `frames` counts the messages of each frame it read."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pending: collections.deque[str] = collections.deque()
        self.frames: list[int] = []

    def recv(self, timeout: float | None = None) -> str:
        if not self.pending:
            frame = self.ws.recv(timeout=timeout)
            assert isinstance(frame, str), f"a binary frame: {frame!r}"
            batched = frame.startswith("[")
            parts = [orjson.dumps(m).decode() for m in orjson.loads(frame)] if batched else [frame]
            self.frames.append(len(parts))
            self.pending.extend(parts)
        return self.pending.popleft()

    def send(self, data: str) -> None:
        self.ws.send(data)

    def close(self) -> None:
        self.ws.close()


def token(user: str, ttl: float = 600.0, **kwargs: Any) -> str:
    return issue_token(SECRET, user, ttl=ttl, **kwargs)


def receive(ws: Client, timeout: float = 10.0) -> dict[str, Any]:
    return orjson.loads(ws.recv(timeout=timeout))  # type: ignore[no-any-return]


def receive_until(
    ws: Client, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not done(got):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; received {got}"
        got.append(receive(ws, left))
    return got


def subscribe(ws: Client, channel: str, since: list[list[Any]] | None = None) -> None:
    ws.send(orjson.dumps({"type": "subscribe", "channel": channel, "since": since}).decode())


@pytest.fixture
def status_topic(new_topic: Callable[..., str]) -> str:
    return new_topic("gateway-status", partitions=3)


@pytest.fixture
def writer(bootstrap_servers: str, status_topic: str) -> StatusWriter:
    return StatusWriter(bootstrap_servers, status_topic)


@pytest.fixture
def gateway(bootstrap_servers: str, status_topic: str, tmp_path: Path) -> Iterator[Gateway]:
    running = Gateway(bootstrap_servers, status_topic, tmp_path / "gateway.log").start()
    yield running
    running.clients.close()
    if running.proc is not None and running.proc.poll() is None:
        running.stop()
