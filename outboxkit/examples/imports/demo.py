"""The imports flow inside `outbox demo`: an upload, two import workers, the status projection and
a gateway in this process, and a WebSocket client that watches the job's status pushed live.

The page itself (`python -m outboxkit.examples.imports.web`) is for people: docs/gateway.md.
A relay must be running (the upload and the workers publish through the outbox).
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable

import orjson
import uvicorn
from websockets.sync.client import connect

from outboxkit.examples.imports.flow import Flow
from outboxkit.examples.imports.projection import build_status
from outboxkit.examples.imports.tables import job_status, metadata
from outboxkit.examples.imports.uploads import request_import
from outboxkit.examples.imports.worker import build_workers
from outboxkit.gateway import GatewayConfig, issue_token
from outboxkit.gateway.app import create_app
from outboxkit.kafka import clients
from outboxkit.kafka.admin import ensure_topic
from outboxkit.kafka.settings import KafkaSettings
from outboxkit.processors.database_mode import DatabaseProcessorRunner
from outboxkit.processors.running import Runner
from projectors.database import engine_for
from projectors.runtime import ProjectorRunner

CONTACTS, CHUNK = 500, 100


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_imports_demo(
    database_url: str,
    kafka: KafkaSettings | str,
    echo: Callable[[str], None] = print,
    *,
    timeout: float = 90.0,
) -> list[str]:
    """Returns the status changes the WebSocket client saw, in order."""
    flow = Flow(chunk=CHUNK)
    admin = clients.admin(kafka)
    ensure_topic(admin, flow.jobs_topic, partitions=3)
    ensure_topic(admin, f"{flow.jobs_topic}.dlq", partitions=1)
    engine = engine_for(database_url)
    metadata.create_all(engine)  # the example services' own tables
    secret = secrets.token_hex(32)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(GatewayConfig(topics=(flow.jobs_topic,), secret=secret), kafka),
            host="127.0.0.1",
            port=port,
            log_config=None,
            ws="websockets-sansio",
        )
    )
    stop = threading.Event()
    runners: list[Runner] = [
        DatabaseProcessorRunner(build_workers(flow), engine, kafka),
        DatabaseProcessorRunner(build_workers(flow), engine, kafka),
        ProjectorRunner(build_status(flow), engine, kafka),
    ]
    threads = [threading.Thread(target=server.run, daemon=True)]
    threads += [threading.Thread(target=r.run, args=(stop,), daemon=True) for r in runners]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline:
                raise SystemExit("the demo's gateway did not start")
            time.sleep(0.05)
        user = f"demo-{secrets.token_hex(3)}"
        rows = "\n".join(f"Person {n},person{n}@example.com" for n in range(1, CONTACTS + 1))

        def upload() -> str:
            with engine.begin() as conn:
                job = request_import(conn, flow, user, "contacts.csv", "name,email\n" + rows)
            echo(
                f"20. imports: {user} uploaded {CONTACTS} contacts"
                " (job row + import.requested, one transaction)"
            )
            return str(job["job_id"])

        job_id, seen = _watch(f"ws://127.0.0.1:{port}/ws", issue_token(secret, user), user, upload, timeout)
        echo(f"21. gateway: pushed to {user}'s WebSocket, in order: " + ", ".join(seen))
        wait = time.monotonic() + 30
        while _status(engine, job_id) != "completed":
            if time.monotonic() > wait:
                raise SystemExit("the job-status projection did not reach completed")
            time.sleep(0.1)
        echo("22. job-status projection: completed (what a page load reads)")
    finally:
        stop.set()
        server.should_exit = True
        for thread in threads:
            thread.join(30)
        engine.dispose()
    return seen


def _watch(
    url: str, token: str, user: str, upload: Callable[[], str], timeout: float
) -> tuple[str, list[str]]:
    """Subscribe to the user's channel, upload, and collect the pushed status changes until done."""
    seen: list[str] = []
    with connect(url) as ws:
        ws.send(orjson.dumps({"type": "connect", "token": token}).decode())
        ws.recv(timeout=10)
        ws.send(orjson.dumps({"type": "subscribe", "channel": f"user:{user}"}).decode())
        ws.recv(timeout=10)
        job_id = upload()
        end = time.monotonic() + timeout
        while not seen or not seen[-1].startswith("import.completed"):
            if time.monotonic() > end:
                raise SystemExit(f"the import did not complete within {timeout:.0f} s; pushed: {seen}")
            message = orjson.loads(ws.recv(timeout=max(end - time.monotonic(), 0.1)))
            if message["type"] == "event":
                data = message["event"]["data"]
                seen.append(f"{message['event']['type']} {data['imported']}/{data['total']}")
    return job_id, seen


def _status(engine: object, job_id: str) -> str | None:
    import sqlalchemy as sa

    assert isinstance(engine, sa.Engine)
    with engine.connect() as conn:
        return conn.execute(sa.select(job_status.c.status).where(job_status.c.job_id == job_id)).scalar()
