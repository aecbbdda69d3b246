"""When mode kafka's open transaction is due.

`transaction_ms` bounds how long an input waits for the commit that makes its outputs visible, the
commit included, counted from when the processor could first have received it. So the clock of a
transaction starts at its first input's receipt, and the transaction is due a commit's duration (a
moving estimate of the recent commits) before `transaction_ms` has passed.

The loop is one thread: while it commits, nothing is handled, and what arrives meanwhile waits in
the consumer. An input handled right after a commit, with no look for inputs that found none in
between, may have waited since that commit began: its transaction's clock starts there.

Whatever the clock says, a transaction stays open at least half of `transaction_ms` after it
began, and the commit estimate takes at most half of it: under a backlog (every transaction then
starts right after a commit) or with commits as long as the transaction (10 ms transactions),
transactions do not shrink to one batch each, and the loop is not committing all the time, which
made inputs wait behind the commits and the next transaction's first outputs wait for the
previous commit's markers (librdkafka retries the CONCURRENT_TRANSACTIONS answer after 20 ms).

Times are `time.monotonic()` seconds, passed in (pure logic).
"""

from __future__ import annotations

COMMIT_WEIGHT = 0.2
"""Weight of the latest commit in the moving estimate of a commit's duration (about the last 5)."""

IDLE_WAIT_SECONDS = 0.1
"""Longest wait for inputs of one consume when no transaction is open (the loop then turns:
health, idle commits)."""


class TransactionClock:
    """The due time of the open transaction of one mode-kafka runner."""

    def __init__(self, transaction_ms: int) -> None:
        self.length = transaction_ms / 1000
        self.commit_estimate = 0.0
        """Moving estimate of a commit's duration, seconds (0 until one committed)."""
        self._since: float | None = None
        self._opened = 0.0
        self._busy_since: float | None = None

    def looked(self, now: float) -> None:
        """The loop found no input waiting: what it handles next arrives after `now`."""
        if self._since is None:
            self._busy_since = None

    def opened(self, now: float) -> None:
        """A transaction began with inputs handled at `now`."""
        self._since = now if self._busy_since is None else self._busy_since
        self._opened = now

    def committed(self, *, started: float, ended: float) -> None:
        """The open transaction's commit ran from `started` to `ended`, and succeeded."""
        duration = ended - started
        if self.commit_estimate == 0.0:
            self.commit_estimate = duration
        else:
            self.commit_estimate += COMMIT_WEIGHT * (duration - self.commit_estimate)
        self._closed(started)

    def ended(self, started: float | None = None) -> None:
        """The open transaction ended without committing (aborted, or its commit failed at `started`)."""
        self._closed(started)

    def _closed(self, started: float | None) -> None:
        self._since = None
        if started is not None:
            self._busy_since = started

    def due_at(self) -> float | None:
        """When the open transaction is due to commit; None when none is open."""
        if self._since is None:
            return None
        half = self.length / 2
        return max(self._opened + half, self._since + self.length - min(self.commit_estimate, half))

    def due(self, now: float) -> bool:
        due = self.due_at()
        return due is not None and now >= due

    def wait(self, now: float) -> float:
        """How long a consume may wait for inputs: not past the open transaction's due time."""
        wait = min(IDLE_WAIT_SECONDS, self.length)
        due = self.due_at()
        if due is None:
            return wait
        return max(0.0, min(wait, due - now))
