"""Progress of long work (replay, rebuild, quarantine requeue, KV dump): a bar on a terminal,
plain periodic lines otherwise (a log file or CI does not render a bar, and click's bar prints
only its label there).

Both go to stderr, so a command's answer on stdout stays clean for pipes and `--json`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

import click


class Progress:
    """`with Progress("republished", total) as p: p.update(done)` (done: absolute, not a step).

    On a terminal: click's progress bar. Elsewhere: `label: done/total (pct %)` when `every` seconds
    have passed since the last line, and a last line at the end with the time taken.
    """

    def __init__(
        self,
        label: str,
        total: int,
        *,
        stream: TextIO | None = None,
        every: float = 5.0,
        terminal: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = max(total, 0)
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self._clock = clock
        self._started = self._last = clock()
        self._bar: Any = None

    def __enter__(self) -> Progress:
        if self.terminal:
            self._bar = click.progressbar(length=max(self.total, 1), label=self.label, file=self.stream)
            self._bar.__enter__()
        return self

    def update(self, done: int, total: int | None = None) -> None:
        """Record that `done` of `total` (unchanged when None) are done."""
        if total is not None:
            self.total = max(total, 0)
            if self._bar is not None:
                self._bar.length = max(self.total, 1)
        step, self.done = done - self.done, done
        if self._bar is not None:
            self._bar.update(step)
            return
        now = self._clock()
        if now - self._last >= self.every:
            self._last = now
            self._line()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(kind, error, trace)
        elif kind is None:
            self._line(f" in {self._clock() - self._started:.1f} s")

    def _line(self, suffix: str = "") -> None:
        percent = f" ({100 * self.done / self.total:.0f} %)" if self.total else ""
        print(f"{self.label}: {self.done}/{self.total}{percent}{suffix}", file=self.stream, flush=True)
