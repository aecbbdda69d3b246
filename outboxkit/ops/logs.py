"""The daemons' log format: one JSON object per line on stderr.

Every line has `time` (UTC, RFC 3339 with milliseconds), `level`, `logger` and `message`; fields
given with `extra=` follow as they are, and `exception` holds a traceback when there is one.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

import orjson

from outbox.errors import ConfigurationError

FIELDS = ("time", "level", "logger", "message")
"""The keys every line has, in this order."""

# Attributes every LogRecord has; anything else came in through `extra=` and is logged as a field.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
# uvicorn (the console's and the gateway's server) adds the message again with terminal colours.
_STANDARD.add("color_message")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and k not in FIELDS})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to the `sys.stderr` of the moment, not the one at start (a test runner swaps it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        return


def configure(level: str = "INFO") -> None:
    """Send every logger's records to stderr as JSON lines, from `level` on (a level name such as
    INFO or DEBUG, any case); replaces the root logger's handlers."""
    name = level.upper()
    if not isinstance(logging.getLevelNamesMapping().get(name), int):
        raise ConfigurationError(f"unknown log level {level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(name)
