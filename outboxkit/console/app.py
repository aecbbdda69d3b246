"""The console's ASGI application (Starlette): the page, its state as JSON, the SSE stream, actions.

- `GET /`: the page; `GET /static/...`: its script and style.
- `GET /api/state`: what is watched, whether actions are on, the last snapshot and the history.
- `GET /api/stream`: Server-Sent Events; `hello` (the same as /api/state) on connect, then a
  `snapshot` event after each poll. The browser's EventSource reconnects by itself.
- `POST /api/quarantine/{requeue|discard}` with `{"ce_ids": [...]}` and `Authorization: Bearer
  <token>`: 403 on a read-only console, 401 without the token.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from outboxkit.console.actions import ActionRefused, QuarantineActions
from outboxkit.console.state import Poller

STATIC = Path(__file__).parent / "static"
KEEPALIVE = 15.0
"""Seconds between SSE comments on a quiet stream (proxies close idle connections)."""


def create_app(poller: Poller, actions: QuarantineActions, watching: dict[str, Any]) -> Starlette:
    def state() -> dict[str, Any]:
        latest = poller.latest
        return {
            "watching": watching,
            "actions": actions.enabled,
            "interval": poller.interval,
            "snapshot": latest[1] if latest else None,
            "history": poller.history.to_json(),
        }

    async def page(_: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def api_state(_: Request) -> Response:
        return Response(orjson.dumps(state()), media_type="application/json")

    async def stream(request: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            yield _event("hello", state())
            sent, quiet = 0, 0.0
            while not await request.is_disconnected():
                latest = poller.latest
                if latest is not None and latest[0] != sent:
                    sent = latest[0]
                    quiet = 0.0
                    yield _event("snapshot", latest[1])
                await asyncio.sleep(0.2)
                quiet += 0.2
                if quiet >= KEEPALIVE:
                    quiet = 0.0
                    yield b": keepalive\n\n"

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    async def act(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body() or b"{}")
            ce_ids = body.get("ce_ids") if isinstance(body, dict) else None
            client = request.client.host if request.client else "?"
            done = await run_in_threadpool(
                actions.run,
                request.path_params["action"],
                ce_ids if isinstance(ce_ids, list) else [],
                request.headers.get("authorization"),
                client,
            )
        except ActionRefused as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)
        except orjson.JSONDecodeError:
            return JSONResponse({"error": 'the body must be JSON: {"ce_ids": [...]}'}, status_code=400)
        poller.poke()
        return JSONResponse({"done": done})

    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/state", api_state),
            Route("/api/stream", stream),
            Route("/api/quarantine/{action}", act, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
