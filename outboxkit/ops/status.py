"""The port every component's status goes through: `outbox ... status`, a daemon's /status.json
and the operator console all read a `StatusSource`.

A component has one status source (relay/status.py, projectors/status.py); its `read()` returns a
frozen dataclass for Python callers, its `snapshot()` the same as JSON values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeAlias

from outbox.errors import OutboxError

JSON: TypeAlias = "bool | int | float | str | Sequence[JSON] | Mapping[str, JSON] | None"
"""A value orjson/json can write as it is (tuples become arrays)."""


class StatusUnavailableError(OutboxError):
    """A status source cannot answer now (its database, broker or Connect cluster is unreachable or
    refuses); the message says which and why, passwords masked."""


class StatusSource(Protocol):
    """Where a component stands now.

    Contract:
    - `snapshot()` asks the component's database and/or broker each time (no cache), so it may
      block for a few seconds; call it on demand, not in a tight loop.
    - It is safe to call from any thread, concurrently with the component's own work: each call
      uses its own connections (or a thread-safe pool) and changes nothing.
    - It returns a mapping with string keys and JSON values (documented by the component's status
      dataclass); the same numbers the component's `outbox ... status` command prints.
    - When it cannot answer it raises an `OutboxError` saying why (e.g. StatusUnavailableError);
      /status.json answers that with 503 and the message. Any other exception is a bug.
    """

    def snapshot(self) -> Mapping[str, JSON]: ...
