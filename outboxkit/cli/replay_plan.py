"""What `outbox replay --dry-run` says a replay would queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from relay import sql

LISTED = 1000
"""The most ce_ids a dry run lists per aggregate type (the counts are always whole)."""


@dataclass(frozen=True)
class TypePlan:
    aggregate_type: str
    events: int
    first_created_at: datetime
    last_created_at: datetime
    ce_ids: tuple[str, ...]
    """The first LISTED events' ce_ids, in the order the relay would publish them."""


@dataclass(frozen=True)
class ReplayPlan:
    """The retained events a replay selects, by aggregate type; nothing is queued to find them."""

    types: tuple[TypePlan, ...]

    @classmethod
    def read(cls, conn: psycopg.Connection[Any], selection: tuple[str, dict[str, Any]]) -> ReplayPlan:
        rows = conn.execute(*sql.replay_plan(selection, LISTED)).fetchall()
        return cls(tuple(TypePlan(t, int(n), first, last, tuple(ids)) for t, n, first, last, ids in rows))

    @property
    def events(self) -> int:
        return sum(t.events for t in self.types)

    def describe(self) -> str:
        if not self.types:
            return "dry run: no retained event matches; nothing would be replayed"
        lines = [
            f"dry run: {self.events} event(s) would be queued for the relay to publish again (nothing queued)"
        ]
        for t in self.types:
            lines.append(
                f"  {t.aggregate_type}: {t.events} event(s) created {t.first_created_at.isoformat()}"
                f" .. {t.last_created_at.isoformat()}"
            )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "events": self.events,
            "aggregate_types": [
                {
                    "aggregate_type": t.aggregate_type,
                    "events": t.events,
                    "first_created_at": t.first_created_at.isoformat(),
                    "last_created_at": t.last_created_at.isoformat(),
                    "ce_ids": list(t.ce_ids),
                }
                for t in self.types
            ],
        }
