"""What the consuming daemons (`projector run`, `processor run`) share around their loop: a stop
event set by SIGTERM/SIGINT, and their endpoints for the loop's duration."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from prometheus_client import CollectorRegistry

from outboxkit.ops.endpoints import serve
from outboxkit.ops.health import Heartbeat
from outboxkit.ops.status import StatusSource


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[threading.Event]:
    """An event that SIGTERM or SIGINT sets during the block; the earlier handlers come back after."""
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def endpoints(
    host: str, port: int | None, *, registry: CollectorRegistry, health: Heartbeat, status: StatusSource
) -> contextlib.AbstractContextManager[object]:
    """/metrics, /healthz and /status.json on host:port for the block; nothing when `port` is unset or 0."""
    if not port:
        return contextlib.nullcontext()
    return serve(host, port, registry=registry, health=health, status=status)
