"""Keep Alembic autogenerate, run in a service's own environment, off outboxkit's tables.

Our tables are created by our migrations but are not in the service's `target_metadata`, so
autogenerate sees them in the database and writes `op.drop_table(...)` for each. Pass
`include_object` to `context.configure(...)` in the service's env.py (docs/write-side.md), or wrap
the service's own hook with `excluding_outboxkit(hook)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from outbox.schema import TABLES

IncludeObject = Callable[[Any, str | None, str, bool, Any], bool]
"""Alembic's `include_object(object, name, type_, reflected, compare_to)` hook."""

__all__ = ["TABLES", "IncludeObject", "excluding_outboxkit", "include_object", "is_outboxkit_object"]


def is_outboxkit_object(obj: Any, name: str | None, type_: str) -> bool:
    """True for one of our tables, or an index, constraint or column of one."""
    if type_ == "table":
        return name in TABLES
    table = getattr(obj, "table", None)
    return getattr(table, "name", None) in TABLES


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic `include_object` hook: everything except outboxkit's tables and what is on them."""
    return not is_outboxkit_object(obj, name, type_)


def excluding_outboxkit(hook: IncludeObject) -> IncludeObject:
    """The service's own `include_object` hook, with outboxkit's tables left out first."""

    def combined(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        return not is_outboxkit_object(obj, name, type_) and hook(obj, name, type_, reflected, compare_to)

    return combined
