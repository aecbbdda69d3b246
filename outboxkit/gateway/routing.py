"""Which channels an event is on, and which connections may see it.

An event is on `user:<owner>` (the owner is the payload's `owner_field`) and on
`<subject_prefix>:<ce_subject>` (one channel per aggregate, e.g. per job: all of its events sit on
one partition, so the channel's versions only grow). A connection receives an event of a channel
when the event's owner is the token's user, or when the token grants that channel by name. An event
without an owner reaches only connections whose token names its channel.
"""

from __future__ import annotations

from dataclasses import dataclass

from outboxkit.gateway.tokens import Grant
from outboxkit.kafka.records import ReceivedEvent

USER_PREFIX = "user:"


@dataclass(frozen=True)
class Routing:
    owner_field: str = "user_id"
    subject_prefix: str = "job"

    def owner(self, event: ReceivedEvent) -> str | None:
        payload = event.payload
        owner = payload.get(self.owner_field) if isinstance(payload, dict) else None
        return str(owner) if owner is not None and owner != "" else None

    def channels(self, event: ReceivedEvent) -> list[str]:
        found = [f"{self.subject_prefix}:{event.subject}"]
        owner = self.owner(event)
        if owner is not None:
            found.append(USER_PREFIX + owner)
        return found

    def may_subscribe(self, grant: Grant, channel: str) -> bool:
        """A user's own channel, any aggregate channel (its events are filtered by owner), or a
        channel the token names; never another user's channel."""
        if channel in grant.channels:
            return True
        if channel.startswith(USER_PREFIX):
            return channel == USER_PREFIX + grant.user
        return channel.startswith(self.subject_prefix + ":")

    @staticmethod
    def may_receive(grant: Grant, channel: str, owner: str | None) -> bool:
        return channel in grant.channels or (owner is not None and owner == grant.user)
