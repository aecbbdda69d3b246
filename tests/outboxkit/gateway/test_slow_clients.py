"""A client that stops reading is cut off with 4008 once its queue is full; the others keep getting
every event with their latency; the metrics say what happened."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import orjson
from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri

from tests.daemons import http_get
from tests.outboxkit.gateway.conftest import Gateway, StatusWriter, receive, subscribe, token

EVENTS = 1500
BASELINE = 600
PADDING = "x" * 16000  # ~16 KB a message: the slow client's socket buffers fill after a few hundred


class StalledClient:
    """A WebSocket client that connects, subscribes, then reads nothing (sans-I/O protocol of the
    `websockets` library over a plain socket with a small receive buffer)."""

    def __init__(self, port: int, token: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        self.protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/ws"))
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        while self.protocol.state is not State.OPEN:
            self.protocol.receive_data(self.sock.recv(4096))
        self.protocol.send_text(orjson.dumps({"type": "connect", "token": token}))
        self.protocol.send_text(orjson.dumps({"type": "subscribe", "channel": "user:alice"}))
        self._flush()

    def _flush(self) -> None:
        self.sock.sendall(b"".join(self.protocol.data_to_send()))

    def read_to_close(self, timeout: float = 30.0) -> int | None:
        """Read everything the gateway sent; the close code it ended with (None: no close frame)."""
        self.sock.settimeout(timeout)
        while self.protocol.close_rcvd is None:
            data = self.sock.recv(1 << 20)
            if not data:
                break
            self.protocol.receive_data(data)
            self.protocol.events_received()
        return self.protocol.close_rcvd.code if self.protocol.close_rcvd else None


def p99(latencies: list[float]) -> float:
    return sorted(latencies)[int(len(latencies) * 0.99)]


def test_a_slow_client_is_cut_off_while_fast_clients_keep_their_latency(
    bootstrap_servers: str, writer: StatusWriter, tmp_path: Path
) -> None:
    gateway = Gateway(
        bootstrap_servers, writer.topic, tmp_path / "gateway.log", ("--queue-size", "50")
    ).start()
    try:
        fast = gateway.client(token("alice"))
        assert receive(fast)["type"] == "connected"
        subscribe(fast, "user:alice")
        assert receive(fast)["type"] == "subscribed"
        latencies: list[float] = []
        received: list[int] = []

        def push(first: int, count: int) -> None:
            """Write events first..first+count-1 while the fast client reads them."""

            def read_fast() -> None:
                while len(received) < first + count:
                    message = orjson.loads(fast.recv(timeout=60))
                    received.append(message["event"]["data"]["n"])
                    latencies.append(time.time() - message["event"]["data"]["sent"])

            reader = threading.Thread(target=read_fast)
            reader.start()
            for start in range(first, first + count, 50):
                writer.write(
                    *[
                        ("job-1", "alice", {"n": n, "sent": time.time(), "pad": PADDING})
                        for n in range(start, start + 50)
                    ]
                )
            reader.join(90)

        # The baseline, same gateway, same run: the fast client alone.
        push(0, BASELINE)
        alone = p99(latencies)
        latencies.clear()
        slow = StalledClient(gateway.port, token("alice"))
        push(BASELINE, EVENTS)
        beside_slow = p99(latencies)
        assert received == list(range(BASELINE + EVENTS)), "the fast client lost or reordered events"
        assert slow.read_to_close() == 4008
        _status, body = http_get(gateway.metrics_port, "/metrics")
        metrics = body.decode()
        assert 'outbox_gateway_drops_total{reason="too_slow"} 1.0' in metrics, metrics
        assert "outbox_gateway_connections 1.0" in metrics
        assert "outbox_gateway_delivery_latency_seconds_count" in metrics
        # Had the fan-out waited on the stalled socket, the fast client would have waited for the
        # ping timeout (20 s). Thrice its own p99 plus 250 ms leaves room for a busy 2-core machine.
        assert beside_slow < 3 * alone + 0.25, (
            f"fast client p99 {beside_slow * 1000:.0f} ms beside the slow one, {alone * 1000:.0f} ms alone"
        )
    finally:
        gateway.clients.close()
        assert gateway.stop() == 0


def test_a_client_that_answers_no_ping_is_dropped(
    bootstrap_servers: str, writer: StatusWriter, tmp_path: Path
) -> None:
    gateway = Gateway(
        bootstrap_servers, writer.topic, tmp_path / "gateway.log", ("--ping-interval", "1")
    ).start()
    try:
        silent = StalledClient(gateway.port, token("alice"))  # reads nothing, so answers no ping
        alive = gateway.client(token("alice"))  # the library answers pings by itself
        assert receive(alive)["type"] == "connected"
        deadline = time.monotonic() + 15
        while "outbox_gateway_connections 2.0" not in http_get(gateway.metrics_port, "/metrics")[1].decode():
            assert time.monotonic() < deadline, "the silent client did not connect"
            time.sleep(0.05)
        while "outbox_gateway_connections 1.0" not in http_get(gateway.metrics_port, "/metrics")[1].decode():
            assert time.monotonic() < deadline, "the silent client was not dropped"
            time.sleep(0.2)
        assert silent.read_to_close() == 1011  # uvicorn's "keepalive ping timeout"
        subscribe(alive, "user:alice")
        assert receive(alive)["type"] == "subscribed"  # the other one is still served
    finally:
        gateway.clients.close()
        assert gateway.stop() == 0
