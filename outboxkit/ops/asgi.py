"""Serving an ASGI application (the console, the gateway) the way every daemon of ours runs:
uvicorn in the main thread, our JSON logs, and SIGTERM/SIGINT as a graceful stop with exit code 0."""

from __future__ import annotations

import signal
from typing import Any

import uvicorn


def run_asgi(app: Any, host: str, port: int, *, graceful_seconds: float = 2.0) -> None:
    """Serve `app` until SIGTERM or SIGINT; open connections get `graceful_seconds` to finish.
    A port that is taken is logged by uvicorn, which exits with code 1.

    uvicorn raises a caught signal again once it has shut down (so the process would die of it,
    exit code -15): our own handler, which it restores before doing so, receives it instead.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # outboxkit.ops.logs formats uvicorn's records too
        access_log=False,
        timeout_graceful_shutdown=max(1, round(graceful_seconds)),
    )
    server = uvicorn.Server(config)

    def stop(*_: object) -> None:
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
