"""One WebSocket connection: its token, its subscriptions, its bounded queue and its sender.

Messages for a client wait in a queue of `queue_size`; the sender task writes what has piled up
each time it runs, in order: one frame per message, or, for a client that asked for batches in its
`connect`, as few frames as `batched_frames` makes (one write, one frame header and one trip
through uvicorn for many messages). When the queue is full the client is not keeping up: it is
closed with 4008 (TOO_SLOW) and everything queued for it is dropped, so a slow client never makes
the gateway's memory grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from outboxkit.gateway.config import GatewayConfig
from outboxkit.gateway.hub import Hub, Subscription
from outboxkit.gateway.metrics import GatewayMetrics
from outboxkit.gateway.protocol import (
    CloseCode,
    Position,
    ProtocolError,
    batched_frames,
    event_message,
    message,
    parse,
    positions_json,
    subscribe_of,
)
from outboxkit.gateway.replay import Gap, read_gap
from outboxkit.gateway.tokens import Grant, TokenRefusedError, verify_token
from outboxkit.kafka.settings import KafkaSettings

log = logging.getLogger("outboxkit.gateway")

REPLAY_LIMIT_FACTOR = 10
"""A replay may hold up to this many times `queue_size` events of the channel; more: reload."""


class Session:
    def __init__(
        self,
        websocket: WebSocket,
        config: GatewayConfig,
        hub: Hub,
        kafka: KafkaSettings | str,
        metrics: GatewayMetrics,
    ) -> None:
        self.ws = websocket
        self.config = config
        self.hub = hub
        self.kafka = kafka
        self.metrics = metrics
        self.queue: asyncio.Queue[tuple[str, float | None] | None] = asyncio.Queue(config.queue_size)
        self.subscriptions: dict[str, Subscription] = {}
        self.grant: Grant | None = None
        self.batch = False
        """Whether the client accepts frames holding a JSON array of messages (its `connect` said so)."""
        self.closing: tuple[CloseCode, str, str] | None = None
        self.done = asyncio.Event()

    async def run(self) -> None:
        await self.ws.accept()
        try:
            self.grant = await self._connect()
        except TokenRefusedError as err:
            await self._refuse(err)
            return
        except ProtocolError as err:
            await self._close_now(CloseCode.TOKEN_INVALID, str(err), "token_invalid")
            return
        self.metrics.connections.inc()
        await self._send(message("connected", user=self.grant.user, expires_at=self.grant.expires_at))
        sender = asyncio.create_task(self._sender())
        expiry = asyncio.create_task(self._expiry())
        receiver = asyncio.create_task(self._receiver())
        try:
            await self.done.wait()
        finally:
            self.metrics.connections.dec()
            for subscription in self.subscriptions.values():
                self.hub.remove(subscription)
            self.subscriptions.clear()
            for task in (expiry, receiver):
                task.cancel()
            if self.closing is not None:
                sender.cancel()
                await self._close_now(*self.closing)
            else:
                sender.cancel()
            for task in (sender, expiry, receiver):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _connect(self) -> Grant:
        try:
            frame = await asyncio.wait_for(self.ws.receive_text(), self.config.connect_timeout)
        except TimeoutError as err:
            raise ProtocolError(f"no connect message within {self.config.connect_timeout:g} s") from err
        first = parse(frame)
        if first["type"] != "connect":
            raise ProtocolError(f"the first message must be connect, not {first['type']!r}")
        batch = first.get("batch", False)
        if not isinstance(batch, bool):
            raise ProtocolError("`batch` in connect must be true or false")
        self.batch = batch
        return verify_token(self.config.secret, first.get("token"))

    async def _refuse(self, err: TokenRefusedError) -> None:
        if err.expired:
            await self._close_now(CloseCode.TOKEN_EXPIRED, str(err), "token_expired")
        else:
            await self._close_now(CloseCode.TOKEN_INVALID, str(err), "token_invalid")

    async def _close_now(self, code: CloseCode, reason: str, drop: str | None = None) -> None:
        if drop is not None:
            self.metrics.drops.labels(drop).inc()
        log.info("closing a connection", extra={"code": int(code), "reason": reason})
        # A close frame travels behind the bytes already in the socket's buffers: a slow client
        # sees 4008 once it has read those. One that reads nothing for `ping_interval` seconds
        # is dropped without it (the server's write buffer stays at its high-water mark meanwhile).
        # A close frame's reason may carry 123 bytes (RFC 6455 section 5.5).
        text = reason.encode()[:123].decode(errors="ignore")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(int(code), text), max(self.config.ping_interval, 2.0))

    def end(self, code: CloseCode, reason: str, drop: str) -> None:
        """End the connection with `code` (from any callback of the loop's thread)."""
        if self.closing is None and not self.done.is_set():
            self.closing = (code, reason, drop)
            self.done.set()

    async def _send(self, data: str) -> None:
        await self.ws.send_text(data)

    async def _sender(self) -> None:
        queue, pushed, latency = self.queue, self.metrics.pushed, self.metrics.latency
        while True:
            items = [await queue.get()]
            while not queue.empty():  # all that piled up while the hub routed: one write
                items.append(queue.get_nowait())
            taken = [item for item in items if item is not None]
            if not taken:
                continue
            datas = [data for data, _timestamp in taken]
            for frame in batched_frames(datas) if self.batch else datas:
                await self._send(frame)
            pushed.inc(len(taken))
            now = time.time()
            for _data, timestamp in taken:
                if timestamp is not None:
                    latency.observe(max(now - timestamp, 0.0))

    def _push(self, data: str, timestamp: float | None) -> bool:
        queue = self.queue
        try:
            queue.put_nowait((data, timestamp))
        except asyncio.QueueFull:
            return False
        if queue.qsize() * 2 >= queue.maxsize:
            self.hub.pressed = True  # let the sender run before the queue fills
        return True

    def _overflow(self) -> None:
        self.end(
            CloseCode.TOO_SLOW, f"more than {self.config.queue_size} messages waited: resume", "too_slow"
        )

    async def _expiry(self) -> None:
        while True:
            assert self.grant is not None
            left = self.grant.expires_at - time.time()
            if left <= 0:
                self.end(
                    CloseCode.TOKEN_EXPIRED, "the token expired: reconnect with a new one", "token_expired"
                )
                return
            await asyncio.sleep(min(left, 60.0))

    async def _receiver(self) -> None:
        try:
            while True:
                frame = await self.ws.receive_text()
                await self._handle(parse(frame))
        except ProtocolError as err:
            self.end(CloseCode.PROTOCOL_ERROR, str(err), "protocol_error")
        except (WebSocketDisconnect, RuntimeError):
            self.done.set()  # the client went away

    async def _handle(self, request: dict[str, Any]) -> None:
        kind = request["type"]
        if kind == "subscribe":
            await self._subscribe(request)
        elif kind == "unsubscribe":
            channel = request.get("channel")
            found = self.subscriptions.pop(channel, None) if isinstance(channel, str) else None
            if found is not None:
                self.hub.remove(found)
            await self._reply(message("unsubscribed", channel=channel))
        elif kind == "refresh":
            await self._refresh(request.get("token"))
        else:
            raise ProtocolError(f"unknown message type {kind!r}: connect, subscribe, unsubscribe or refresh")

    async def _reply(self, data: str) -> None:
        """Replies go through the queue too: they keep their place among the events."""
        await self.queue.put((data, None))

    async def _refresh(self, token: object) -> None:
        assert self.grant is not None
        try:
            grant = verify_token(self.config.secret, token)
        except TokenRefusedError as err:
            await self._reply(message("error", request="refresh", code="token_refused", message=str(err)))
            return
        if grant.user != self.grant.user:
            await self._reply(
                message(
                    "error", request="refresh", code="other_user", message="a refresh must name the same user"
                )
            )
            return
        self.grant = grant
        await self._reply(message("refreshed", expires_at=grant.expires_at))

    def _current_grant(self) -> Grant:
        assert self.grant is not None
        return self.grant

    async def _subscribe(self, request: dict[str, Any]) -> None:
        wanted = subscribe_of(request)
        channel, grant = wanted.channel, self._current_grant()
        if not self.hub.routing.may_subscribe(grant, channel):
            await self._reply(
                message(
                    "error",
                    request="subscribe",
                    channel=channel,
                    code="forbidden",
                    message=f"the token of {grant.user!r} does not grant {channel!r}",
                )
            )
            return
        if channel in self.subscriptions:
            await self._reply(
                message(
                    "error",
                    request="subscribe",
                    channel=channel,
                    code="already_subscribed",
                    message="unsubscribe first to subscribe again from other positions",
                )
            )
            return
        if len(self.subscriptions) >= self.config.max_subscriptions:
            await self._reply(
                message(
                    "error",
                    request="subscribe",
                    channel=channel,
                    code="too_many",
                    message=f"at most {self.config.max_subscriptions} channels per connection",
                )
            )
            return
        since = wanted.since or {}
        unknown = sorted(tp for tp in since if tp not in self.hub.live)
        if unknown:
            await self._reply(
                message(
                    "error",
                    request="subscribe",
                    channel=channel,
                    code="unknown_partition",
                    message=f"this gateway does not follow {unknown}",
                )
            )
            return
        subscription = Subscription(
            channel,
            self._current_grant,
            self._push,
            self._overflow,
            self.config.queue_size,
            positions=dict(since),
            buffer=[] if since else None,
        )
        targets = {tp: self.hub.live[tp] for tp in since}
        self.hub.add(subscription)
        self.subscriptions[channel] = subscription
        if not since:
            await self._reply(
                message(
                    "subscribed",
                    channel=channel,
                    recovered=False,
                    replayed=0,
                    positions=positions_json(dict(self.hub.live)),
                )
            )
            return
        gap = await self._read_gap(channel, since, targets)
        if gap.reason is not None:
            self.hub.remove(subscription)
            del self.subscriptions[channel]
            await self._reply(message("subscribed", channel=channel, recovered=False, reason=gap.reason))
            return
        await self._send_gap(subscription, gap)

    async def _read_gap(self, channel: str, since: dict[Position, int], targets: dict[Position, int]) -> Gap:
        limit = self.config.queue_size * REPLAY_LIMIT_FACTOR
        return await asyncio.to_thread(
            read_gap,
            self.kafka,
            self.hub.routing,
            channel,
            since,
            targets,
            limit=limit,
            timeout=self.config.replay_timeout,
        )

    async def _send_gap(self, subscription: Subscription, gap: Gap) -> None:
        replayed = 0
        for event in gap.events:
            owner = self.hub.routing.owner(event)
            if subscription.accepts(event.topic, event.partition, event.offset, owner):
                await self.queue.put((event_message(subscription.channel, event), None))
                replayed += 1
        self.metrics.replayed.inc(replayed)
        await self._reply(
            message("subscribed", channel=subscription.channel, recovered=True, replayed=replayed)
        )
        buffered = subscription.buffer or []
        while buffered:  # records that arrive meanwhile are appended: drained here, in order
            held = buffered.pop(0)
            if subscription.accepts(held.topic, held.partition, held.offset, held.owner):
                await self.queue.put((held.data, held.timestamp))
        subscription.buffer = None


Factory = Callable[[WebSocket], Session]
