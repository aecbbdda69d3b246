"""What a check found: its outcome, what it saw, and what to do when it is not a pass."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from outboxkit.ops.status import JSON


class Outcome(StrEnum):
    PASS = "pass"
    WARN = "warn"
    """Works, but not as a production deployment should (e.g. one replica); the exit code stays 0."""
    FAIL = "fail"
    """Will not work, or loses a guarantee: the exit code is 1."""
    SKIP = "skip"
    """Could not be checked because an earlier check failed (e.g. no database connection)."""


@dataclass(frozen=True)
class Check:
    name: str
    outcome: Outcome
    detail: str
    """What was seen, in one line (secrets masked)."""
    fix: str | None = None
    """What to do; set for every outcome but a pass."""

    def to_json(self) -> dict[str, JSON]:
        return {"name": self.name, "outcome": self.outcome.value, "detail": self.detail, "fix": self.fix}


def passed(name: str, detail: str) -> Check:
    return Check(name, Outcome.PASS, detail)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, Outcome.FAIL, detail, fix)


def warned(name: str, detail: str, fix: str) -> Check:
    return Check(name, Outcome.WARN, detail, fix)


def skipped(name: str, because: str) -> Check:
    return Check(name, Outcome.SKIP, f"not checked: {because}", "fix the failure above first")


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    def add(self, checks: Iterable[Check]) -> None:
        self.checks.extend(checks)

    def __iter__(self) -> Iterator[Check]:
        return iter(self.checks)

    @property
    def ok(self) -> bool:
        """No failure (warnings and skips of optional parts allowed)."""
        return not any(c.outcome in (Outcome.FAIL, Outcome.SKIP) for c in self.checks)

    def to_json(self) -> dict[str, JSON]:
        return {"ok": self.ok, "checks": [c.to_json() for c in self.checks]}
