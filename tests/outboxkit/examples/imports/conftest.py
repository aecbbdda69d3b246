"""The imports example as it runs: the web app, the relay, import workers, the status projector
and the gateway, each a child process on the real stack, with the example's own prefix per test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from confluent_kafka.admin import NewTopic

from outbox import migrations
from outboxkit.examples.imports.flow import Flow
from outboxkit.examples.imports.tables import contacts, job_status
from tests.isolated import free_port
from tests.outboxkit.gateway.conftest import SECRET, Gateway
from tests.relay.conftest import RelayProcess, start_relay
from tests.relay.events import engine_for
from tests.services import kafka_admin

REPO = Path(__file__).resolve().parents[4]


@dataclass
class Child:
    """One `python -m ...` child process; restartable."""

    command: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        with open(self.log, "ab") as stderr:
            self.proc = subprocess.Popen(
                self.command, env=self.env, cwd=REPO, stderr=stderr, stdout=subprocess.DEVNULL
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@dataclass
class Imports:
    flow: Flow
    database_url: str
    engine: sa.Engine
    web_url: str
    gateway: Gateway
    relay: RelayProcess
    workers: list[Child] = field(default_factory=list)
    others: list[Child] = field(default_factory=list)

    def job_rows(self) -> list[sa.Row[tuple[object, ...]]]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(job_status).order_by(job_status.c.job_id)))

    def contact_counts(self) -> dict[tuple[str, int], int]:
        """(job, row) -> how many times that contact was imported."""
        query = sa.select(contacts.c.job_id, contacts.c.row_number, sa.func.count()).group_by(
            contacts.c.job_id, contacts.c.row_number
        )
        with self.engine.connect() as conn:
            return {(j, r): n for j, r, n in conn.execute(query)}


def write_csv(path: Path, rows: int, bad_row: int | None = None) -> Path:
    lines = ["name,email"]
    for n in range(1, rows + 1):
        email = "not-an-address" if n == bad_row else f"person{n}@example.com"
        lines.append(f"Person {n},{email}")
    path.write_text("\n".join(lines) + "\n")
    return path


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def imports_app(
    new_database: Callable[[], str],
    bootstrap_servers: str,
    unique: Callable[[str], str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., Imports]]:
    """imports_app(workers=2, chunk=50, chunk_delay=0.2) starts everything and returns it."""
    started: list[Imports] = []
    admin = kafka_admin(bootstrap_servers)
    topics: list[str] = []

    def start(workers: int = 2, chunk: int = 50, chunk_delay: float = 0.0) -> Imports:
        url = new_database()
        migrations.upgrade(url)
        flow = Flow(prefix=unique("imports"), chunk=chunk, chunk_delay=chunk_delay)
        for topic in (flow.jobs_topic, f"{flow.jobs_topic}.dlq"):
            admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)
            topics.append(topic)
        env = {
            "OUTBOX_DATABASE_URL": url,
            "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
            "OUTBOX_GATEWAY_SECRET": SECRET,
            "IMPORTS_PREFIX": flow.prefix,
            "IMPORTS_CHUNK": str(chunk),
            "IMPORTS_CHUNK_DELAY": str(chunk_delay),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }
        gateway = Gateway(bootstrap_servers, flow.jobs_topic, tmp_path / "gateway.log").start()
        web_port = free_port()
        web = Child(
            [sys.executable, "-m", "outboxkit.examples.imports.web"],
            {**env, "IMPORTS_PORT": str(web_port), "IMPORTS_GATEWAY_URL": gateway.url},
            tmp_path / "web.log",
        ).start()
        web_url = f"http://127.0.0.1:{web_port}/"
        wait_for(lambda: _answers(web_url), 30, "the web app")  # it creates the example's tables
        run = [sys.executable, "-m", "outboxkit"]
        projector = Child(
            [*run, "projector", "run", "outboxkit.examples.imports.projection:status_from_env"],
            env,
            tmp_path / "projector.log",
        ).start()
        relay = start_relay(tmp_path, url, bootstrap_servers, "idempotent")
        app = Imports(flow, url, engine_for(url), web_url, gateway, relay, others=[web, projector])
        for n in range(workers):
            app.workers.append(
                Child(
                    [
                        *run,
                        "processor",
                        "run",
                        "outboxkit.examples.imports.worker:workers_from_env",
                        "--instance-id",
                        f"worker-{n}",
                    ],
                    env,
                    tmp_path / f"worker-{n}.log",
                ).start()
            )
        started.append(app)
        return app

    yield start
    for app in started:
        for child in [*app.workers, *app.others]:
            child.stop()
        app.gateway.clients.close()
        if app.gateway.proc is not None and app.gateway.proc.poll() is None:
            app.gateway.stop()
        app.relay.terminate()
        app.engine.dispose()
    if topics:
        for future in admin.delete_topics(topics).values():
            future.result(timeout=30)
