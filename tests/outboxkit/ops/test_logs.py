"""The daemons' one log format: a JSON object per line with the same leading keys."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from outbox.errors import ConfigurationError
from outboxkit.ops import logs


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger, restored afterwards (configure() replaces its handlers)."""
    logger = logging.getLogger()
    handlers, level = logger.handlers[:], logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_a_line_has_the_fields_then_the_extras(root: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    logs.configure("info")
    logging.getLogger("outbox.relay").info("shard %s acquired", 3, extra={"shard": 3, "shards": [1, 3]})
    logging.getLogger("outbox.relay").debug("not written at info")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("projectors.runtime").exception("failed")
    first, second = (orjson.loads(line) for line in stderr.getvalue().splitlines())
    assert list(first)[:4] == list(logs.FIELDS)
    assert first["level"] == "info" and first["logger"] == "outbox.relay"
    assert first["message"] == "shard 3 acquired" and first["shard"] == 3 and first["shards"] == [1, 3]
    assert first["time"].endswith("+00:00") and "T" in first["time"]
    assert second["level"] == "error" and "ValueError: boom" in second["exception"]


def test_lines_go_to_the_stderr_of_the_moment(root: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test runner (click's CliRunner, pytest) swaps sys.stderr after configure() ran."""
    logs.configure()
    swapped = io.StringIO()
    monkeypatch.setattr("sys.stderr", swapped)
    logging.getLogger("x").warning("hello")
    assert orjson.loads(swapped.getvalue())["message"] == "hello"


def test_an_unknown_level_is_refused(root: logging.Logger) -> None:
    with pytest.raises(ConfigurationError, match="unknown log level 'LOUD'"):
        logs.configure("LOUD")
