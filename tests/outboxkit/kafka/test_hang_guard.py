"""outboxkit.kafka.transactions without a broker: a call that hangs ends the process (status 75),
and which failed producers may be replaced by a new one of their transactional.id."""

from __future__ import annotations

import subprocess
import sys

from confluent_kafka import KafkaError

from outboxkit.kafka.transactions import HUNG_EXIT_STATUS, replaceable

HANGING = """
import logging, time
from outboxkit.kafka.transactions import hang_guard
logging.basicConfig()
with hang_guard("send_offsets_to_transaction", 0.3):
    time.sleep(30)
"""

RETURNING = """
import time
from outboxkit.kafka.transactions import hang_guard
with hang_guard("commit_transaction", 0.5):
    time.sleep(0.1)
time.sleep(0.8)  # past the guard's time: it must not fire once the block is done
"""


def test_a_call_that_hangs_ends_the_process_with_status_75_and_says_why() -> None:
    done = subprocess.run([sys.executable, "-c", HANGING], capture_output=True, text=True, timeout=20)
    assert done.returncode == HUNG_EXIT_STATUS == 75, done.stderr
    assert "send_offsets_to_transaction did not return in 0.3 s: the Kafka client hangs" in done.stderr


def test_a_call_that_returns_leaves_the_process_alone() -> None:
    done = subprocess.run([sys.executable, "-c", RETURNING], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr


def test_a_fenced_producer_is_never_replaced_and_one_in_an_invalid_state_is() -> None:
    for fenced in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH):
        assert not replaceable(KafkaError(fenced))
    assert replaceable(KafkaError(KafkaError.INVALID_TXN_STATE))
