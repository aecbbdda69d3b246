"""The one HTTP server of every daemon: /metrics, /healthz and /status.json.

/metrics is prometheus_client's own WSGI app (content negotiation: text or OpenMetrics, gzip,
`name[]` filters); the rest is a small WSGI router in front of it. It runs on the standard
library's wsgiref server with a thread per request, the way prometheus_client's own
`start_http_server` does: no further dependency, and a slow /status.json (it asks the database and
the broker) never holds up a scrape.

- `GET /metrics`: the daemon's registry.
- `GET /healthz`: 200 when the heartbeat says ok and is recent, else 503; JSON body with the reason.
- `GET /status.json`: the daemon's status source, JSON; 503 with the reason when it cannot answer.
- anything else: 404 naming the endpoints.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app

from outbox.errors import ConfigurationError, OutboxError
from outbox.urls import mask_url
from outboxkit.ops.health import Heartbeat
from outboxkit.ops.status import JSON, StatusSource

log = logging.getLogger("outboxkit.ops")

METRICS, HEALTH, STATUS = "/metrics", "/healthz", "/status.json"
ENDPOINTS = (METRICS, HEALTH, STATUS)


class Endpoints:
    """The WSGI application: routes a request to the metrics, the heartbeat or the status source."""

    def __init__(
        self, registry: CollectorRegistry, health: Heartbeat, status: StatusSource | None = None
    ) -> None:
        self.health = health
        self.status = status
        self._metrics = make_wsgi_app(registry)

    @property
    def endpoints(self) -> tuple[str, ...]:
        return ENDPOINTS if self.status is not None else (METRICS, HEALTH)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if path not in self.endpoints:
            return _json(start_response, 404, {"error": f"no endpoint {path}", "endpoints": self.endpoints})
        if method != "GET":
            body = {"error": f"{method} is not allowed on {path}: use GET"}
            return _json(start_response, 405, body, [("Allow", "GET")])
        if path == METRICS:
            return self._metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == HEALTH:
            report = self.health.report()
            return _json(start_response, 200 if report.healthy else 503, report.body)
        return self._status(start_response)

    def _status(self, start_response: StartResponse) -> Iterable[bytes]:
        assert self.status is not None
        try:
            snapshot = self.status.snapshot()
        except OutboxError as err:
            return _json(start_response, 503, {"error": mask_url(str(err))})
        except Exception as err:  # a bug: say so on the endpoint and in the log, keep serving
            log.exception("the status source failed")
            body = {"error": f"the status source failed: {type(err).__name__}: {mask_url(str(err))}"}
            return _json(start_response, 500, body)
        return _json(start_response, 200, snapshot)


def _json(
    start_response: StartResponse, code: int, body: JSON, headers: list[tuple[str, str]] | None = None
) -> list[bytes]:
    data = orjson.dumps(body, option=orjson.OPT_APPEND_NEWLINE)
    start_response(
        f"{code} {HTTPStatus(code).phrase}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *(headers or [])],
    )
    return [data]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a request in progress never keeps the process alive


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return  # scrapes and probes are not worth a log line


class EndpointServer:
    """`Endpoints` served on host:port from a daemon thread; `close()` stops it."""

    def __init__(self, app: WSGIApplication, host: str, port: int) -> None:
        """Binds at once (port 0: any free port, see `port`); OSError when the port is taken."""
        server_class = _IPv6Server if ":" in host else _Server
        self._server = make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"endpoints-{self.port}", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> EndpointServer:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> EndpointServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def serve(
    host: str,
    port: int,
    *,
    registry: CollectorRegistry,
    health: Heartbeat,
    status: StatusSource | None = None,
) -> EndpointServer:
    """Start serving a daemon's /metrics, /healthz and /status.json on host:port (in a thread).

    A port that is taken is a ConfigurationError naming it."""
    app = Endpoints(registry, health, status)
    try:
        server = EndpointServer(app, host, port)
    except OSError as err:
        raise ConfigurationError(
            f"cannot serve /metrics, /healthz and /status.json on {host}:{port}: {err.strerror or err}"
            " (choose another with the daemon's --metrics-port)"
        ) from err
    log.info("serving %s", " ".join(app.endpoints), extra={"address": f"{host}:{server.port}"})
    return server.start()
