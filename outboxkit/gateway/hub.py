"""Routing live records to subscriptions, in the event loop's thread (no locks: one thread).

`live` holds, per partition, the next offset the hub will dispatch: a resume replays from Kafka up
to exactly that point while the subscription buffers what arrives live meanwhile, so nothing falls
between the replay and the live stream and nothing is sent twice (a subscription also drops any
record below its own position: docs/gateway.md, "Resume").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from outboxkit.gateway.protocol import Position, event_message
from outboxkit.gateway.routing import Routing
from outboxkit.gateway.tokens import Grant
from outboxkit.kafka.records import ReceivedEvent


@dataclass(frozen=True)
class LiveRecord:
    """One record read by the follower; `event` is None for a record that is not an event."""

    topic: str
    partition: int
    offset: int
    timestamp: float | None
    """The record's Kafka timestamp, seconds (for the delivery latency)."""
    event: ReceivedEvent | None


Push = Callable[[str, float | None], bool]
"""Queue a message on a connection (with its record's timestamp); False when the queue is full."""


@dataclass(eq=False)
class Subscription:
    """One channel of one connection."""

    channel: str
    grant: Callable[[], Grant]
    """The connection's current grant (a `refresh` replaces it)."""
    push: Push
    overflow: Callable[[], None]
    """Called once the connection cannot keep up (its queue or replay buffer is full)."""
    limit: int
    positions: dict[Position, int] = field(default_factory=dict)
    """Per partition, the next offset this subscription still accepts."""
    buffer: list[Held] | None = None
    """While a replay runs: live records held back (unchecked) until the replay is sent."""

    def accepts(self, topic: str, partition: int, offset: int, owner: str | None) -> bool:
        """Whether the record is new to this subscription and allowed by its grant; moves on if so."""
        if not Routing.may_receive(self.grant(), self.channel, owner):
            return False
        if offset < self.positions.get((topic, partition), 0):
            return False
        self.positions[(topic, partition)] = offset + 1
        return True

    def offer(self, held: Held) -> None:
        """A live record of this channel: held back during a replay, else checked and queued."""
        if self.buffer is not None:
            if len(self.buffer) >= self.limit:
                self.overflow()
            else:
                self.buffer.append(held)
        elif self.accepts(held.topic, held.partition, held.offset, held.owner) and not self.push(
            held.data, held.timestamp
        ):
            self.overflow()


@dataclass(frozen=True)
class Held:
    """A live record of one channel, its message encoded."""

    topic: str
    partition: int
    offset: int
    owner: str | None
    data: str
    timestamp: float | None


TURN_OFFERS = 20_000
"""Messages the hub queues (over all connections) before the senders get their turn: a few ms of
routing, the delivery latency it may add when the gateway is busy."""


class Hub:
    def __init__(self, routing: Routing) -> None:
        self.routing = routing
        self.live: dict[Position, int] = {}
        self.subscribers: dict[str, set[Subscription]] = {}
        self.pressed = False
        """Set by a connection whose queue is half full: its sender gets its turn after this event."""

    def add_partitions(self, starts: dict[Position, int]) -> None:
        """Partitions the follower reads from now on, from these offsets (before any record)."""
        for position, offset in starts.items():
            self.live.setdefault(position, offset)

    def add(self, subscription: Subscription) -> None:
        self.subscribers.setdefault(subscription.channel, set()).add(subscription)

    def remove(self, subscription: Subscription) -> None:
        found = self.subscribers.get(subscription.channel)
        if found is not None:
            found.discard(subscription)
            if not found:
                del self.subscribers[subscription.channel]

    async def dispatch(self, records: Sequence[LiveRecord]) -> None:
        """Route a batch. The senders get their turn after `TURN_OFFERS` messages were queued,
        when a connection's queue is half full, and at the end: each sender then writes what
        piled up for it at once (batched frames, or a frame per message), instead of waking per
        event; a client that keeps up never sees its queue fill however large Kafka's batches are."""
        offers = 0
        for record in records:
            self.live[(record.topic, record.partition)] = record.offset + 1
            event = record.event
            if event is None:
                continue
            owner = self.routing.owner(event)
            for channel in self.routing.channels(event):
                found = self.subscribers.get(channel)
                if not found:
                    continue
                held = Held(
                    record.topic,
                    record.partition,
                    record.offset,
                    owner,
                    event_message(channel, event),
                    record.timestamp,
                )
                for subscription in list(found):
                    subscription.offer(held)
                offers += len(found)
            if offers and (self.pressed or offers >= TURN_OFFERS):
                self.pressed, offers = False, 0
                await asyncio.sleep(0)
        if offers:  # the next batch may be waiting already: its get() would not yield
            self.pressed = False
            await asyncio.sleep(0)
