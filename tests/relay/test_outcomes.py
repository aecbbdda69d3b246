"""Per-record outcomes of a produce and what a batch comes to (pure logic, no broker).

An outcome slot is None (acknowledged), PENDING (no delivery report yet) or a KafkaError; the
publisher turns the slots of a batch into delivered / poisoned / retry. Errors are plain
KafkaError values; "sending a record alone" is a function from the record to its outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError
from hypothesis import given
from hypothesis import strategies as st

from outbox.envelope import KafkaRecord
from relay.publisher import (
    PENDING,
    PERMANENT_ERRORS,
    Batch,
    BatchResult,
    alone,
    describe,
    failure,
    isolate_each,
    sort_outcome,
    transaction_outcome,
    unless_purged,
)

TOO_LARGE = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
NOT_AUTHORISED = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)
REPLICAS = KafkaError(KafkaError.NOT_ENOUGH_REPLICAS)
TIMED_OUT = KafkaError(KafkaError._MSG_TIMED_OUT)
PURGED = KafkaError(KafkaError._PURGE_QUEUE)


def batch_of(*ids: int) -> Batch:
    return [(i, KafkaRecord(topic="t", key=f"k{i}".encode(), value=b"{}", headers=[])) for i in ids]


def sent_alone(
    outcomes: Mapping[int, KafkaError | None], log: list[int]
) -> Callable[[int, Any], KafkaError | None]:
    """What each record's send on its own comes to; `log` records what was sent, in order."""

    def send_one(event_id: int, _record: KafkaRecord) -> KafkaError | None:
        log.append(event_id)
        return outcomes.get(event_id)

    return send_one


def test_failure_finds_the_first_error_among_pending_and_acknowledged_records() -> None:
    fenced = KafkaError(KafkaError._FENCED, "fenced", fatal=True)
    # Comparing a KafkaError with PENDING (`err in (None, PENDING)`) used to leave a TypeError set
    # in the C extension, raised later as a SystemError that ended the relay.
    assert failure([None, PENDING, fenced, TOO_LARGE]) is fenced
    assert failure([PENDING, None]) is None
    assert failure([]) is None


def test_an_acknowledged_batch_is_delivered_without_isolating_anything() -> None:
    def isolate(_suspects: Batch) -> BatchResult:
        raise AssertionError("nothing failed: nothing to isolate")

    result = sort_outcome(batch_of(1, 2, 3), [None, None, None], isolate)
    assert result == BatchResult(delivered=[1, 2, 3])


def test_records_without_a_report_or_with_a_transient_error_are_retried_with_the_first_reason() -> None:
    result = sort_outcome(batch_of(1, 2, 3, 4), [None, PENDING, REPLICAS, None], lambda _: BatchResult())
    assert result.delivered == [1, 4]
    assert result.poisoned == []
    assert result.retry == "Kafka did not acknowledge in time"
    result = sort_outcome(batch_of(1, 2, 3), [REPLICAS, PENDING, TIMED_OUT], lambda _: BatchResult())
    assert result.retry == describe(REPLICAS) == "NOT_ENOUGH_REPLICAS: Broker: Not enough in-sync replicas"


def test_permanent_failures_are_sent_alone_in_batch_order_and_the_culprit_is_poisoned() -> None:
    """A broker may fail a whole request for one bad record: the others of it succeed alone."""
    sent: list[int] = []
    result = sort_outcome(
        batch_of(1, 2, 3, 4, 5),
        [None, TOO_LARGE, TOO_LARGE, None, TOO_LARGE],
        lambda suspects: isolate_each(suspects, sent_alone({3: TOO_LARGE}, sent)),
    )
    assert sent == [2, 3], "nothing after the culprit is sent"
    assert result.delivered == [1, 4, 2]
    assert result.poisoned == [(3, describe(TOO_LARGE))]
    assert result.retry is None, "5 is read again at once, with 3 in quarantine holding its aggregate"


def test_a_transient_reason_of_the_batch_wins_over_what_isolation_finds() -> None:
    sent: list[int] = []
    result = sort_outcome(
        batch_of(1, 2, 3),
        [REPLICAS, NOT_AUTHORISED, None],
        lambda suspects: isolate_each(suspects, sent_alone({2: TIMED_OUT}, sent)),
    )
    assert result.delivered == [3] and result.poisoned == []
    assert result.retry == describe(REPLICAS)


def test_isolation_stops_at_a_transient_failure_and_says_why() -> None:
    sent: list[int] = []
    result = isolate_each(batch_of(1, 2, 3), sent_alone({2: REPLICAS, 3: TOO_LARGE}, sent))
    assert sent == [1, 2]
    assert result == BatchResult(delivered=[1], retry=describe(REPLICAS))


def test_a_record_sent_alone_without_a_report_is_retried_not_poisoned() -> None:
    assert alone(None) is None
    assert alone(TOO_LARGE) is TOO_LARGE
    timed_out = alone(PENDING)
    assert isinstance(timed_out, KafkaError) and timed_out.code() == KafkaError._TIMED_OUT
    result = isolate_each(batch_of(1, 2), lambda _i, _r: alone(PENDING))
    assert result.poisoned == [] and result.delivered == []
    assert result.retry == "_TIMED_OUT: Local: Timed out"


def test_a_committed_transaction_delivers_its_whole_batch() -> None:
    def isolate(_suspects: Batch) -> BatchResult:
        raise AssertionError("a committed transaction is not isolated")

    # Slots of a committed transaction may still read PENDING: the commit is what counts.
    assert transaction_outcome(batch_of(1, 2), [None, PENDING], None, isolate) == BatchResult(
        delivered=[1, 2]
    )


def test_an_aborted_transaction_is_isolated_only_for_a_permanent_failure() -> None:
    isolated: list[Batch] = []

    def isolate(suspects: Batch) -> BatchResult:
        isolated.append(suspects)
        return BatchResult(delivered=[1], poisoned=[(2, "too large")])

    batch = batch_of(1, 2, 3)
    result = transaction_outcome(batch, [None, TOO_LARGE, PENDING], "MSG_SIZE_TOO_LARGE: ...", isolate)
    assert isolated == [batch], "the whole batch is re-sent alone, in order"
    assert result == BatchResult(delivered=[1], poisoned=[(2, "too large")])
    # Nothing of an aborted transaction is visible: without a permanent failure, all of it waits.
    result = transaction_outcome(batch, [None, REPLICAS, PENDING], "NOT_ENOUGH_REPLICAS: ...", isolate)
    assert result == BatchResult(retry="NOT_ENOUGH_REPLICAS: ...")
    assert len(isolated) == 1


def test_a_record_lost_to_the_purge_of_an_abort_is_sent_again_up_to_three_times() -> None:
    answers = [PURGED, PURGED, None]
    assert unless_purged(lambda: answers.pop(0)) is None and answers == []
    answers = [PURGED, TOO_LARGE, None]
    assert unless_purged(lambda: answers.pop(0)) is TOO_LARGE and answers == [None]
    answers = [PURGED, PURGED, PURGED, None]
    assert unless_purged(lambda: answers.pop(0)) is PURGED and answers == [None]


SLOTS = st.sampled_from([None, PENDING, TOO_LARGE, NOT_AUTHORISED, REPLICAS, TIMED_OUT])
ALONE = st.sampled_from([None, TOO_LARGE, NOT_AUTHORISED, REPLICAS, TIMED_OUT])


def permanent(outcome: Any) -> bool:
    return isinstance(outcome, KafkaError) and outcome.code() in PERMANENT_ERRORS


@given(st.lists(st.tuples(SLOTS, ALONE), max_size=30))
def test_every_record_is_delivered_poisoned_or_left_in_the_outbox_with_a_reason(
    records: list[tuple[Any, KafkaError | None]],
) -> None:
    """`records`: each record's slot after producing the batch, and its outcome sent alone."""
    batch = batch_of(*range(len(records)))
    slots = [slot for slot, _ in records]
    on_its_own = {i: outcome for i, (_, outcome) in enumerate(records)}
    sent: list[int] = []
    result = sort_outcome(batch, slots, lambda suspects: isolate_each(suspects, sent_alone(on_its_own, sent)))

    delivered, poisoned = set(result.delivered), {i for i, _ in result.poisoned}
    assert len(delivered) == len(result.delivered) and not delivered & poisoned
    assert {i for i, slot in enumerate(slots) if slot is None} <= delivered
    suspects = [i for i, slot in enumerate(slots) if permanent(slot)]
    # Only suspects are sent alone, in batch order, up to the first that fails alone.
    assert sent == suspects[: len(sent)]
    assert all(on_its_own[i] is None for i in sent[:-1])
    assert poisoned <= set(sent[-1:]) and all(permanent(on_its_own[i]) for i in poisoned)
    left = set(range(len(records))) - delivered - poisoned
    if any(slot is PENDING or (slot is not None and not permanent(slot)) for slot in slots):
        assert result.retry is not None and left
    if result.retry is None:
        # Read again at once: only what a poisoned record stopped from being sent waits.
        assert all(i in suspects and i not in sent for i in left)
        assert not left or poisoned
