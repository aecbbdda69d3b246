"""The gateway's ASGI application (Starlette): `/ws` (the protocol of docs/gateway.md) and `/`.

The live follower starts with the application (lifespan) and stops with it; /metrics and /healthz
are served by outboxkit.ops on their own port (`serve_gateway`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from outboxkit.gateway.config import GatewayConfig
from outboxkit.gateway.follower import Follower
from outboxkit.gateway.hub import Hub
from outboxkit.gateway.metrics import GatewayMetrics
from outboxkit.gateway.routing import Routing
from outboxkit.gateway.session import Session
from outboxkit.kafka.settings import KafkaSettings
from outboxkit.ops.health import Heartbeat

PATH = "/ws"


def create_app(
    config: GatewayConfig,
    kafka: KafkaSettings | str,
    metrics: GatewayMetrics | None = None,
    heartbeat: Heartbeat | None = None,
) -> Starlette:
    metrics = metrics or GatewayMetrics()
    heartbeat = heartbeat or Heartbeat()
    hub = Hub(Routing(config.owner_field, config.subject_prefix))
    follower = Follower(kafka, config.topics, metrics, heartbeat, config.partition_check_interval)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        hub.live.update(await asyncio.to_thread(follower.open))
        following = asyncio.create_task(follower.follow(hub.dispatch, hub.add_partitions))
        try:
            yield
        finally:
            following.cancel()
            await asyncio.to_thread(follower.stop)

    async def connect(websocket: WebSocket) -> None:
        await Session(websocket, config, hub, kafka, metrics).run()

    async def about(_: Request) -> Response:
        return JSONResponse(
            {
                "websocket": PATH,
                "topics": list(config.topics),
                "positions": [[t, p, o] for (t, p), o in sorted(hub.live.items())],
                "channels": len(hub.subscribers),
            }
        )

    return Starlette(routes=[Route("/", about), WebSocketRoute(PATH, connect)], lifespan=lifespan)
