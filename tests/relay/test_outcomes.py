"""Per-record outcomes of a produce: None (acknowledged), PENDING (no report yet) or a KafkaError."""

from __future__ import annotations

from confluent_kafka import KafkaError

from relay.publisher import PENDING, failure


def test_failure_finds_the_first_error_among_pending_and_acknowledged_records() -> None:
    fenced = KafkaError(KafkaError._FENCED, "fenced", fatal=True)
    too_large = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
    # Comparing a KafkaError with PENDING (`err in (None, PENDING)`) used to leave a TypeError set
    # in the C extension, raised later as a SystemError that ended the relay.
    assert failure([None, PENDING, fenced, too_large]) is fenced
    assert failure([PENDING, None]) is None
    assert failure([]) is None
