"""Progress of long work: periodic plain lines when the output is not a terminal, a bar when it is."""

from __future__ import annotations

import io

from outboxkit.cli.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_without_a_terminal_it_writes_a_line_every_interval_and_one_at_the_end() -> None:
    out, clock = io.StringIO(), Clock()
    with Progress("republished", 1000, stream=out, every=5, terminal=False, clock=clock) as progress:
        for done in range(0, 1001, 100):
            clock.now += 1.5
            progress.update(done)
    assert out.getvalue().splitlines() == [
        "republished: 300/1000 (30 %)",
        "republished: 700/1000 (70 %)",
        "republished: 1000/1000 (100 %) in 16.5 s",
    ]


def test_a_total_learnt_later_is_used_and_a_failure_writes_no_last_line() -> None:
    out, clock = io.StringIO(), Clock()
    try:
        with Progress("rebuilding", 0, stream=out, every=1, terminal=False, clock=clock) as progress:
            clock.now = 2
            progress.update(50, total=200)
            raise RuntimeError("stopped")
    except RuntimeError:
        pass
    assert out.getvalue().splitlines() == ["rebuilding: 50/200 (25 %)"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_it_draws_a_bar() -> None:
    out = Terminal()
    with Progress("dumped", 10, stream=out) as progress:
        progress.update(10)
    assert "dumped" in out.getvalue() and "100%" in out.getvalue()
