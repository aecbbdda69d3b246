"""A daemon's heartbeat: what its loop last said about itself, and whether that is recent enough.

The loop calls `beat()` on every turn (and on trouble); /healthz answers from `report()`. A loop
that stops turning (a hung call, a lock wait, a dead thread) stops beating, and the heartbeat goes
stale: that is reported as unhealthy without the loop's help.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from outboxkit.ops.status import JSON


class HealthStatus(StrEnum):
    """What a loop reports about itself; only OK (and recent) is healthy."""

    STARTING = "starting"
    """Not turned yet (connecting, waiting for a broker or the database)."""

    OK = "ok"
    """Turning and doing its work."""

    DEGRADED = "degraded"
    """Turning, but not doing its work (a dependency is away, a setting is refused); retrying."""

    FAILED = "failed"
    """Gave up; the process is about to exit with the reason."""


STALE = "stale"
"""The status /healthz reports when the last beat is older than the limit, whatever it said."""


@dataclass(frozen=True)
class HealthReport:
    healthy: bool
    """True: /healthz answers 200; False: 503."""
    body: dict[str, JSON]
    """`status`, `reason` (when not ok), `last_beat_seconds_ago`, `stale_after_seconds`, and the
    fields of the last beat (e.g. the relay's `instance` and `shards`)."""


class Heartbeat:
    """The last beat of one loop. Thread-safe: the loop beats, HTTP threads read."""

    def __init__(self, stale_after: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        """`stale_after`: seconds without a beat after which the loop counts as stuck."""
        if stale_after <= 0:
            raise ValueError(f"stale_after must be positive, not {stale_after}")
        self.stale_after = stale_after
        self._clock = clock
        self._lock = threading.Lock()
        self._status = HealthStatus.STARTING
        self._reason: str | None = None
        self._fields: dict[str, JSON] = {}
        self._last = clock()

    def beat(self, status: str = HealthStatus.OK, reason: str | None = None, **fields: JSON) -> None:
        """Record the loop's state now. `status` is a HealthStatus value; `fields` are shown as
        they are on /healthz (JSON values); the previous beat's fields are replaced."""
        state = HealthStatus(status)
        with self._lock:
            self._status, self._reason, self._fields = state, reason, fields
            self._last = self._clock()

    @property
    def status(self) -> HealthStatus:
        """What the last beat said (staleness aside)."""
        with self._lock:
            return self._status

    def report(self) -> HealthReport:
        with self._lock:
            status, reason, fields, last = self._status, self._reason, self._fields, self._last
        age = max(self._clock() - last, 0.0)
        shown: str = status.value
        if age > self.stale_after:
            shown = STALE
            reason = (
                f"no heartbeat for {age:.1f} s (limit {self.stale_after:g} s): the loop is stuck or "
                f"gone; it last said {status.value}" + (f" ({reason})" if reason else "")
            )
        elif reason is None and status is HealthStatus.STARTING:
            reason = "not started yet"
        body: dict[str, JSON] = {"status": shown}
        if reason is not None:
            body["reason"] = reason
        body.update(fields)
        body["last_beat_seconds_ago"] = round(age, 3)
        body["stale_after_seconds"] = self.stale_after
        return HealthReport(healthy=shown == HealthStatus.OK.value, body=body)
