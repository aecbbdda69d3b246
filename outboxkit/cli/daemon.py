"""What the consuming daemons (`projector run`, `processor run`) share around their loop: a stop
event set by SIGTERM/SIGINT, and their endpoints for the loop's duration."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Mapping
from typing import Any

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
    options: Mapping[str, Any], *, registry: CollectorRegistry, health: Heartbeat, status: StatusSource
) -> contextlib.AbstractContextManager[object]:
    """/metrics, /healthz and /status.json on the command's `metrics_host`:`metrics_port` options
    for the block; nothing when the port is unset or 0."""
    host, port = options["metrics_host"], options["metrics_port"]
    if not port:
        return contextlib.nullcontext()
    return serve(host, port, registry=registry, health=health, status=status)
