"""The wire protocol (docs/gateway.md): JSON text frames, one message each, with a `type`; a client
that asked for batches in its `connect` also gets frames holding a JSON array of messages, in order.

Client -> gateway: `connect` (first, with the token), `subscribe` (a channel, optionally `since`
positions to resume from), `unsubscribe`, `refresh` (a new token before the old one expires).
Gateway -> client: `connected`, `subscribed` (with `recovered`), `unsubscribed`, `event`
(`{channel, version, event}`), `error` (a refused request; the connection stays open).
A connection the gateway ends gets one of the close codes below.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import orjson

from outbox.errors import OutboxError
from outboxkit.kafka.records import ReceivedEvent

Position = tuple[str, int]
"""(topic, partition)."""


class CloseCode(IntEnum):
    """Why the gateway closed a connection (4000-4999: private use, RFC 6455 section 7.4.2)."""

    SERVICE_RESTART = 1012
    """The gateway is stopping (sent by uvicorn): reconnect (to another process) and resume."""
    TOKEN_INVALID = 4001
    """Forged or malformed token, or no `connect` in time: do not retry with the same token."""
    TOKEN_EXPIRED = 4002
    """The token expired (at connect, or during the connection without a `refresh`): get a new one."""
    PROTOCOL_ERROR = 4003
    """A frame that is not a message of this protocol."""
    TOO_SLOW = 4008
    """The client read too slowly and its queue filled up: reconnect and resume."""


class ProtocolError(OutboxError):
    """A client message this protocol does not know (closes with 4003)."""


@dataclass(frozen=True)
class Subscribe:
    channel: str
    since: dict[Position, int] | None
    """Per partition, the next offset the client has not seen; None: live only, no replay."""


def parse(frame: str | bytes) -> dict[str, Any]:
    """A client frame as a message with a string `type`; ProtocolError saying what is wrong."""
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError as err:
        raise ProtocolError(f"a frame must be a JSON object: {err}") from err
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError('a message must be a JSON object with a "type"')
    return message


def subscribe_of(message: dict[str, Any]) -> Subscribe:
    """`{"type": "subscribe", "channel": "job:42", "since": [["topic", 0, 17], ...]}`."""
    channel, since = message.get("channel"), message.get("since")
    if not isinstance(channel, str) or not channel:
        raise ProtocolError("subscribe needs a `channel` (a string)")
    if since is None:
        return Subscribe(channel, None)
    if not isinstance(since, list):
        raise ProtocolError("`since` must be a list of [topic, partition, next_offset]")
    positions: dict[Position, int] = {}
    for entry in since:
        ok = isinstance(entry, list) and len(entry) == 3
        if not ok or not isinstance(entry[0], str) or not _count(entry[1]) or not _count(entry[2]):
            raise ProtocolError(f"`since` entry {entry!r} is not [topic, partition, next_offset]")
        positions[(entry[0], entry[1])] = entry[2]
    return Subscribe(channel, positions)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def positions_json(positions: dict[Position, int]) -> list[list[Any]]:
    return [[topic, partition, offset] for (topic, partition), offset in sorted(positions.items())]


def message(kind: str, **fields: Any) -> str:
    return orjson.dumps({"type": kind, **fields}).decode()


def event_message(channel: str, event: ReceivedEvent) -> str:
    """`{type: event, channel, version, event}`, encoded once per channel and shared by connections
    (text: a WebSocket text frame needs str, and decoding it per connection would cost)."""
    return orjson.dumps(
        {
            "type": "event",
            "channel": channel,
            "version": {"topic": event.topic, "partition": event.partition, "offset": event.offset},
            "event": {
                "id": event.id,
                "type": event.type,
                "subject": event.subject,
                "time": event.time.isoformat(),
                "data": event.payload,
            },
        }
    ).decode()


BATCH_BYTES = 64 * 1024
"""A batched frame stops growing at this many characters (a client's frame limit is often 1 MiB)."""


def batched_frames(messages: Sequence[str], limit: int = BATCH_BYTES) -> Iterator[str]:
    """Encoded messages as few frames: runs of them as a JSON array of at most `limit` characters,
    in order; a message alone (or larger than `limit`) as itself, so one message is never an array."""
    run: list[str] = []
    size = 1
    for data in messages:
        if run and size + len(data) + 1 > limit:
            yield _frame(run)
            run, size = [], 1
        run.append(data)
        size += len(data) + 1
    if run:
        yield _frame(run)


def _frame(run: list[str]) -> str:
    return run[0] if len(run) == 1 else "[" + ",".join(run) + "]"
