"""Prometheus metrics and the /healthz endpoint of one relay (own registry: no global state)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class RelayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.published = Counter("outbox_relay_published", "Events Kafka acknowledged", registry=r)
        self.batch_seconds = Histogram(
            "outbox_relay_batch_seconds",
            "Read + publish + finish of one batch",
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.errors = Counter("outbox_relay_errors", "Failures by kind", ["kind"], registry=r)
        self.quarantined = Counter("outbox_relay_quarantined", "Events moved to quarantine", registry=r)
        self.backlog = Gauge("outbox_relay_backlog_events", "Unpublished events in the outbox", registry=r)
        self.oldest_age = Gauge(
            "outbox_relay_oldest_unpublished_seconds", "Age of the oldest unpublished event", registry=r
        )
        self.quarantine_size = Gauge(
            "outbox_relay_quarantine_events", "Events waiting in quarantine", registry=r
        )
        self.owned_shards = Gauge("outbox_relay_owned_shards", "Shards this relay publishes", registry=r)
        self.last_loop = time.monotonic()
        self.health: dict[str, Any] = {"status": "starting"}

    def beat(self, **health: Any) -> None:
        """Called by the relay loop on every turn; /healthz is unhealthy when beats stop."""
        self.last_loop = time.monotonic()
        self.health = health

    def serve(self, host: str, port: int, stale_after: float) -> ThreadingHTTPServer:
        """Serve /metrics and /healthz in a daemon thread; returns the server (shutdown() stops it)."""
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
                elif self.path == "/healthz":
                    age = time.monotonic() - metrics.last_loop
                    ok = age < stale_after and metrics.health.get("status") == "ok"
                    body = orjson.dumps({**metrics.health, "last_loop_seconds_ago": round(age, 3)})
                    self._send(200 if ok else 503, body, "application/json")
                else:
                    self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # scrapes are not worth a log line

        server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=server.serve_forever, name="relay-metrics", daemon=True).start()
        return server
