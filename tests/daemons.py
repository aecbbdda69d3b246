"""What every daemon (relay, projector) shows an operator: its endpoints and its log lines."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import orjson

from outboxkit.ops.logs import FIELDS


def http_get(port: int, path: str) -> tuple[int, bytes]:
    """GET a daemon's endpoint on localhost: (status, body), also for 4xx/5xx answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def healthy(port: int) -> bool:
    """True once the daemon's /healthz answers 200; False while it is not listening or says 503."""
    try:
        return http_get(port, "/healthz")[0] == 200
    except urllib.error.URLError:
        return False


def http_json(port: int, path: str) -> tuple[int, Any]:
    status, body = http_get(port, path)
    return status, orjson.loads(body)


def json_log(text: str) -> list[dict[str, Any]]:
    """A daemon's stderr as log entries; fails unless every line is a JSON object whose keys start
    with the fields every daemon writes (time, level, logger, message)."""
    entries = []
    for line in text.splitlines():
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            raise AssertionError(f"a log line that is not JSON: {line!r}") from err
        assert isinstance(entry, dict) and tuple(entry)[: len(FIELDS)] == FIELDS, line
        entries.append(entry)
    assert entries, "the daemon logged nothing"
    return entries
