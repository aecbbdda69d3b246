"""When a mode-kafka transaction is due (pure: no client is made until `run`)."""

from __future__ import annotations

import pytest

from outboxkit.processors import Processor, ProcessorConfig
from outboxkit.processors.kafka_mode import KafkaProcessorRunner


def runner(transaction_ms: int) -> KafkaProcessorRunner:
    processor = Processor("due", ["orders"], config=ProcessorConfig(transaction_ms=transaction_ms))
    return KafkaProcessorRunner(processor, "127.0.0.1:9")


@pytest.mark.parametrize(
    ("transaction_ms", "commit_ms", "open_ms"),
    [(100, 0, 100), (100, 12, 88), (100, 50, 50), (100, 80, 50), (10, 7, 5), (1000, 30, 970)],
)
def test_a_transaction_is_due_its_size_less_the_commits_duration_and_open_at_least_half(
    transaction_ms: int, commit_ms: float, open_ms: float
) -> None:
    """Its first input waits about `transaction_ms` for the commit that makes its outputs visible."""
    made = runner(transaction_ms)
    made._commit_estimate = commit_ms / 1000
    assert made._open_for() == pytest.approx(open_ms / 1000)


def test_without_an_open_transaction_a_consume_waits_up_to_100_ms_or_the_transaction_size() -> None:
    assert runner(100)._wait() == pytest.approx(0.1)
    assert runner(20)._wait() == pytest.approx(0.02)
    assert not runner(100)._due()
