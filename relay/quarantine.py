"""The quarantine of events Kafka refused for good: list, requeue, discard (on the caller's connection).

`outbox relay quarantine ...` and the operator console both act through these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from outboxkit.ops.status import JSON
from relay import sql


@dataclass(frozen=True)
class Quarantined:
    ce_id: str
    aggregate_type: str
    aggregate_id: str
    ce_type: str
    topic: str
    quarantined_at: datetime
    reason: str

    def to_json(self) -> dict[str, JSON]:
        return {
            "ce_id": self.ce_id,
            "aggregate_type": self.aggregate_type,
            "aggregate_id": self.aggregate_id,
            "type": self.ce_type,
            "topic": self.topic,
            "quarantined_at": self.quarantined_at.isoformat(),
            "reason": self.reason,
        }


def list_quarantined(
    conn: psycopg.Connection[Any], limit: int | None = None, topic: str | None = None
) -> list[Quarantined]:
    """The oldest `limit` quarantined events (None: all) of `topic` (None: any), in outbox order."""
    return [Quarantined(*row) for row in conn.execute(*sql.quarantined(limit, topic)).fetchall()]


def requeue(conn: psycopg.Connection[Any], ce_ids: Sequence[str]) -> list[str]:
    """Put the events back into the outbox in their old place; returns the ce_ids moved."""
    return [row[0] for row in conn.execute(*sql.requeue(ce_ids)).fetchall()]


def discard(conn: psycopg.Connection[Any], ce_ids: Sequence[str]) -> list[str]:
    """Drop the events for good; returns the ce_ids dropped."""
    return [row[0] for row in conn.execute(*sql.discard(ce_ids)).fetchall()]
