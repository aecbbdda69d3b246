"""The endpoint server's routing, as a WSGI app (no socket) and once over a real loopback socket."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from wsgiref.util import setup_testing_defaults

import orjson
import pytest
from prometheus_client import CollectorRegistry, Counter

from outbox.errors import ConfigurationError
from outboxkit.ops.endpoints import Endpoints, serve
from outboxkit.ops.health import Heartbeat
from outboxkit.ops.status import JSON, StatusUnavailableError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Fixed:
    """A status source that answers what it was given, or raises it."""

    def __init__(self, answer: Mapping[str, JSON] | Exception) -> None:
        self.answer = answer

    def snapshot(self) -> Mapping[str, JSON]:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def registry() -> CollectorRegistry:
    r = CollectorRegistry()
    Counter("outbox_test_things", "Things", registry=r).inc(3)
    return r


def call(app: Endpoints, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    environ: dict[str, object] = {"PATH_INFO": path, "REQUEST_METHOD": method}
    setup_testing_defaults(environ)
    seen: dict[str, object] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    body: Iterable[bytes] = app(environ, start_response)  # type: ignore[arg-type]
    data = b"".join(body)
    headers = seen["headers"]
    assert isinstance(headers, dict)
    return int(str(seen["status"]).split()[0]), headers, data


def test_metrics_are_the_registry_in_prometheus_text() -> None:
    code, headers, body = call(Endpoints(registry(), Heartbeat()), "/metrics")
    assert code == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert "outbox_test_things_total 3.0" in body.decode()


def test_health_is_503_until_the_first_ok_beat_then_200() -> None:
    health = Heartbeat()
    app = Endpoints(registry(), health)
    code, headers, body = call(app, "/healthz")
    assert (code, orjson.loads(body)["status"]) == (503, "starting")
    assert headers["Content-Type"] == "application/json"
    health.beat("ok", shards=[0, 2], instance="host-1")
    code, _, body = call(app, "/healthz")
    said = orjson.loads(body)
    assert code == 200
    assert said["status"] == "ok" and said["shards"] == [0, 2] and said["instance"] == "host-1"
    assert "reason" not in said


@pytest.mark.parametrize("status", ["degraded", "failed"])
def test_health_is_503_with_the_reason_when_degraded_or_failed(status: str) -> None:
    health = Heartbeat()
    health.beat(status, "postgres: cannot connect")
    code, _, body = call(Endpoints(registry(), health), "/healthz")
    assert code == 503
    assert orjson.loads(body) | {"last_beat_seconds_ago": 0} == {
        "status": status,
        "reason": "postgres: cannot connect",
        "last_beat_seconds_ago": 0,
        "stale_after_seconds": 30.0,
    }


def test_health_is_503_when_the_heartbeat_is_older_than_the_limit() -> None:
    clock = Clock()
    health = Heartbeat(stale_after=10, clock=clock)
    app = Endpoints(registry(), health)
    health.beat("ok")
    clock.now += 10
    assert call(app, "/healthz")[0] == 200  # at the limit: still fresh
    clock.now += 0.5
    code, _, body = call(app, "/healthz")
    said = orjson.loads(body)
    assert code == 503 and said["status"] == "stale", said
    assert (
        said["reason"].startswith("no heartbeat for 10.5 s (limit 10 s)") and "last said ok" in said["reason"]
    )
    assert said["last_beat_seconds_ago"] == 10.5
    health.beat("ok")
    assert call(app, "/healthz")[0] == 200


def test_a_beat_with_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="fine"):
        Heartbeat().beat("fine")


def test_status_is_the_source_snapshot_as_json() -> None:
    answer = {"backlog": 3, "owners": [{"shard": 0, "pid": 7}], "group": "g", "lag": 0.25, "x": None}
    code, headers, body = call(Endpoints(registry(), Heartbeat(), Fixed(answer)), "/status.json")
    assert code == 200 and headers["Content-Type"] == "application/json"
    assert orjson.loads(body) == answer


def test_status_is_503_with_the_reason_when_the_source_cannot_answer() -> None:
    source = Fixed(StatusUnavailableError("cannot connect to PostgreSQL at postgresql://u:s3cret@db/x"))
    code, _, body = call(Endpoints(registry(), Heartbeat(), source), "/status.json")
    assert code == 503
    assert orjson.loads(body) == {"error": "cannot connect to PostgreSQL at postgresql://u:***@db/x"}


def test_a_failing_status_source_is_a_500_and_the_server_goes_on() -> None:
    app = Endpoints(registry(), Heartbeat(), Fixed(KeyError("partitions")))
    code, _, body = call(app, "/status.json")
    assert code == 500 and "KeyError" in orjson.loads(body)["error"]
    assert call(app, "/metrics")[0] == 200


@pytest.mark.parametrize("path", ["/", "/nothing", "/healthz/", "/metrics/x", "/status"])
def test_an_unknown_path_is_a_404_naming_the_endpoints(path: str) -> None:
    code, _, body = call(Endpoints(registry(), Heartbeat(), Fixed({})), path)
    assert code == 404
    assert orjson.loads(body) == {
        "error": f"no endpoint {path}",
        "endpoints": ["/metrics", "/healthz", "/status.json"],
    }


def test_without_a_status_source_status_json_is_not_an_endpoint() -> None:
    code, _, body = call(Endpoints(registry(), Heartbeat()), "/status.json")
    assert code == 404 and orjson.loads(body)["endpoints"] == ["/metrics", "/healthz"]


def test_other_methods_than_get_are_refused() -> None:
    code, headers, body = call(Endpoints(registry(), Heartbeat()), "/healthz", method="POST")
    assert code == 405 and headers["Allow"] == "GET"
    assert "POST is not allowed on /healthz" in orjson.loads(body)["error"]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_the_server_answers_on_a_socket_and_a_taken_port_is_a_clear_error() -> None:
    health = Heartbeat()
    health.beat("ok")
    with serve("127.0.0.1", 0, registry=registry(), health=health, status=Fixed({"n": 1})) as server:
        base = f"http://127.0.0.1:{server.port}"
        assert get(f"{base}/healthz")[0] == 200
        assert get(f"{base}/status.json") == (200, b'{"n":1}\n')
        assert b"outbox_test_things_total 3.0" in get(f"{base}/metrics")[1]
        assert get(f"{base}/other")[0] == 404
        with pytest.raises(ConfigurationError, match=rf"127.0.0.1:{server.port}: .*--metrics-port"):
            serve("127.0.0.1", server.port, registry=registry(), health=health)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=2):
        pass  # closed: nothing listens any more
