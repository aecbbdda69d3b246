"""When mode kafka's open transaction is due (outboxkit.processors.transaction_clock): `transaction_ms`
bounds how long an input waits for the commit that makes its outputs visible, counted from when it
could first have been received, the commit's own duration (a moving estimate) included. Pure
logic: times are passed in."""

from __future__ import annotations

import pytest

from outboxkit.processors.transaction_clock import TransactionClock


def test_an_input_received_while_idle_counts_from_its_receipt_less_the_commit_estimate() -> None:
    clock = TransactionClock(transaction_ms=100)
    clock.committed(started=0.0, ended=0.010)  # one commit seen: the estimate is 10 ms
    clock.looked(0.5)  # nothing waiting; the next input arrives while the loop waits for it
    clock.opened(0.6)
    assert clock.due_at() == pytest.approx(0.6 + 0.100 - 0.010)
    assert not clock.due(0.68)
    assert clock.due(0.69)


def test_an_input_that_came_during_the_previous_commit_counts_from_that_commits_start() -> None:
    clock = TransactionClock(transaction_ms=100)
    clock.opened(0.0)
    clock.committed(started=0.100, ended=0.120)
    clock.opened(0.121)  # no look between: the input may have waited since the commit began
    assert clock.due_at() == pytest.approx(0.100 + 0.100 - 0.020)


def test_a_look_that_found_nothing_after_a_commit_moves_the_count_to_the_next_receipt() -> None:
    clock = TransactionClock(transaction_ms=100)
    clock.opened(0.0)
    clock.committed(started=0.100, ended=0.120)
    clock.looked(0.121)
    clock.opened(0.300)
    assert clock.due_at() == pytest.approx(0.300 + 0.100 - 0.020)


def test_the_commit_estimate_follows_recent_commits_and_never_takes_more_than_half_a_transaction() -> None:
    clock = TransactionClock(transaction_ms=100)
    for n in range(50):
        clock.committed(started=float(n), ended=n + 0.008)
    assert clock.commit_estimate == pytest.approx(0.008, rel=0.01)
    for n in range(50, 100):
        clock.committed(started=float(n), ended=n + 0.300)  # a broker stall: commits of 300 ms
    clock.looked(200.0)
    clock.opened(200.0)
    assert clock.due_at() == pytest.approx(200.0 + 0.050)  # at least half a transaction to fill


def test_a_transaction_ended_without_commit_does_not_feed_the_estimate() -> None:
    clock = TransactionClock(transaction_ms=100)
    clock.committed(started=0.0, ended=0.010)
    clock.opened(1.0)
    clock.ended()
    assert clock.commit_estimate == pytest.approx(0.010)
    assert clock.due_at() is None


def test_a_transaction_stays_open_half_its_size_when_commits_are_as_long_as_it() -> None:
    clock = TransactionClock(transaction_ms=10)
    clock.committed(started=0.0, ended=0.008)
    clock.opened(0.0085)  # came during the commit: its clock started at 0.0
    assert clock.due_at() == pytest.approx(0.0085 + 0.005)


def test_wait_is_bounded_by_the_due_time_and_by_the_idle_wait() -> None:
    clock = TransactionClock(transaction_ms=100)
    assert clock.wait(now=0.0) == pytest.approx(0.1)  # idle: up to 100 ms per consume
    clock.looked(0.0)
    clock.opened(1.0)
    assert clock.wait(now=1.02) == pytest.approx(0.08)
    assert clock.wait(now=1.5) == 0.0
    short = TransactionClock(transaction_ms=10)
    assert short.wait(now=0.0) == pytest.approx(0.010)
