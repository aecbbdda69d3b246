"""When the relay purges expired rows under retention=keep.

Each purge statement deletes at most one chunk, so it is a short transaction that never holds
many row locks or a long snapshot. A chunk that came back full says more expired rows wait: the
next chunk is due at once (on the next turn, after one batch per owned shard, so publishing is
never starved) instead of one purge interval later, when a busy outbox would never catch up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PurgeSchedule:
    """Purge chunks of `chunk` rows: one per `interval` seconds, back to back while they come back full."""

    interval: float
    chunk: int
    due_at: float = 0.0

    def due(self, now: float) -> bool:
        return now >= self.due_at

    def purged(self, now: float, rows: int) -> bool:
        """Note a chunk's result; True when it was full (purge again on the next turn)."""
        more = rows >= self.chunk
        self.due_at = now if more else now + self.interval
        return more
