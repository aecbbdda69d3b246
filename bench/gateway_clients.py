"""Cheap WebSocket clients for bench_gateway.py, run in processes of their own so that the gateway
process's capacity is what the benchmark measures.

One client process holds a share of the connections on one asyncio loop: each connection is an
asyncio.Protocol around the `websockets` library's sans-I/O client (no task, no queue per
connection). Like a browser, a client offers permessage-deflate; it sends `connect`, subscribes to
one channel, answers pings (the sans-I/O protocol does), and counts the events it receives: a text
frame is one message, or a JSON array of messages (docs/gateway.md, "Batched frames").

The parent talks to a client process through a Pipe: the process sends ("ready", opened) once its
connections are subscribed, then ("done", result) once each connection has its expected events,
the parent said "stop", or its deadline passed.
"""

from __future__ import annotations

import asyncio
import resource
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import orjson
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from outboxkit.gateway import issue_token


@dataclass
class Spec:
    """What one client process does."""

    url: str
    secret: str
    users: list[str]
    """One connection per user, each subscribed to `channel` (`{user}` is replaced)."""
    channel: str
    grants: tuple[str, ...] = ()
    expect: int = 0
    """Events all the process's connections must receive before it reports (0: until "stop")."""
    deadline: float = 120.0
    deflate: bool = True
    batch: bool = True
    """Ask for batched frames in `connect`."""


@dataclass
class Totals:
    events: int = 0
    frames: int = 0
    last: float = 0.0
    latencies: list[float] = field(default_factory=list)
    measure_latency: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    expect: int = 0


class Client(asyncio.Protocol):
    def __init__(self, spec: Spec, user: str, totals: Totals) -> None:
        self.protocol = ClientProtocol(
            parse_uri(spec.url), extensions=[ClientPerMessageDeflateFactory()] if spec.deflate else None
        )
        self.spec, self.user, self.totals = spec, user, totals
        self.subscribed = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def _flush(self) -> None:
        assert self.transport is not None
        out = self.protocol.data_to_send()
        if out:
            self.transport.write(b"".join(out))

    def _send(self, message: dict[str, Any]) -> None:
        self.protocol.send_text(orjson.dumps(message))

    def data_received(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                if self.protocol.state is not State.OPEN:
                    self._fail(f"handshake refused: {event.status_code}")
                    continue
                token = issue_token(self.spec.secret, self.user, channels=self.spec.grants)
                self._send({"type": "connect", "token": token, "batch": self.spec.batch})
                channel = self.spec.channel.format(user=self.user)
                self._send({"type": "subscribe", "channel": channel})
            elif event.opcode is Opcode.TEXT:
                self._text(event.data)
        self._flush()

    def _text(self, data: bytes) -> None:
        parsed = orjson.loads(data)
        messages = parsed if isinstance(parsed, list) else [parsed]
        totals, now = self.totals, time.time()
        if messages and messages[0]["type"] == "event":
            totals.frames += 1
        for message in messages:
            kind = message["type"]
            if kind == "event":
                totals.events += 1
                totals.last = now
                if totals.measure_latency:
                    totals.latencies.append(now - message["event"]["data"]["sent"])
            elif kind == "subscribed" and not self.subscribed.done():
                self.subscribed.set_result(None)
            elif kind not in {"connected", "subscribed"}:
                self._fail(f"unexpected {message}")
        if totals.expect and totals.events >= totals.expect:
            totals.done.set()

    def _fail(self, why: str) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(RuntimeError(why))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"connection lost: {exc}")

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _run(spec: Spec, pipe: Connection, measure_latency: bool) -> None:
    loop = asyncio.get_running_loop()
    totals = Totals(measure_latency=measure_latency, expect=spec.expect)
    uri = parse_uri(spec.url)
    clients: list[Client] = []
    stop = time.monotonic() + spec.deadline
    for start in range(0, len(spec.users), 100):
        batch = [Client(spec, user, totals) for user in spec.users[start : start + 100]]
        await asyncio.gather(
            *[loop.create_connection(lambda c=c: c, uri.host, uri.port) for c in batch]  # type: ignore[misc]
        )
        await asyncio.wait_for(asyncio.gather(*[c.subscribed for c in batch]), 60)
        clients += batch
    cpu = cpu_seconds()
    pipe.send(("ready", len(clients)))
    stopped = loop.create_future()
    loop.add_reader(pipe.fileno(), lambda: stopped.done() or stopped.set_result(pipe.recv()))
    waits = [asyncio.ensure_future(stopped)]
    if spec.expect:
        waits.append(asyncio.ensure_future(totals.done.wait()))
    await asyncio.wait(waits, timeout=max(stop - time.monotonic(), 1), return_when=asyncio.FIRST_COMPLETED)
    result = {
        "events": totals.events,
        "frames": totals.frames,
        "last": totals.last,
        "cpu": cpu_seconds() - cpu,
        "latencies": totals.latencies,
    }
    for c in clients:
        c.close()
    loop.remove_reader(pipe.fileno())
    pipe.send(("done", result))
    if not stopped.done():  # the parent says "stop" to everyone in the end
        pipe.recv()


def serve(spec: Spec, pipe: Connection, measure_latency: bool = False) -> None:
    """A client process's entry point."""
    asyncio.run(_run(spec, pipe, measure_latency))
