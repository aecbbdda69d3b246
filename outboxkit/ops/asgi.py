"""Serving an ASGI application (the console, the gateway) the way every daemon of ours runs:
uvicorn in the main thread, our JSON logs, and SIGTERM/SIGINT as a graceful stop with exit code 0."""

from __future__ import annotations

import signal
from typing import Any

import uvicorn


def run_asgi(
    app: Any,
    host: str,
    port: int,
    *,
    graceful_seconds: float = 2.0,
    ping_interval: float | None = 20.0,
    max_frame_bytes: int = 1024 * 1024,
    per_message_deflate: bool = True,
) -> None:
    """Serve `app` until SIGTERM or SIGINT; open connections get `graceful_seconds` to finish.
    A port that is taken is logged by uvicorn, which exits with code 1.

    WebSockets: a ping every `ping_interval` seconds (None: none); a peer that does not answer
    with a pong within as long is disconnected. Frames larger than `max_frame_bytes` are refused.
    `per_message_deflate`: accept a client's offer of compression (RFC 7692; every browser offers
    it), which compresses each frame for each connection on its own.

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
        ws="websockets-sansio",
        ws_ping_interval=ping_interval,
        ws_ping_timeout=ping_interval,
        ws_max_size=max_frame_bytes,
        ws_per_message_deflate=per_message_deflate,
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
