"""Splitting a batch before producing (pure logic, no broker): what is published, what is
quarantined, what is held behind a quarantined event of its aggregate.

What Kafka would say about a topic is a plain function here: a refusal (str) or a size limit (int).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from hypothesis import given
from hypothesis import strategies as st

from outbox.envelope import KafkaRecord
from relay.preflight import split, too_large
from relay.rows import Aggregate, Fetched, Malformed

ORDER_1: Aggregate = ("order", "o-1")
ORDER_2: Aggregate = ("order", "o-2")
CART_1: Aggregate = ("cart", "o-1")  # the same id as ORDER_1, another aggregate type


def record(topic: str, value_bytes: int = 2) -> KafkaRecord:
    return KafkaRecord(topic=topic, key=b"k", value=b"x" * value_bytes, headers=[("ce_id", b"1")])


def topics(verdicts: Mapping[str, str | int], asked: list[str]) -> Callable[[str], str | int]:
    """Kafka's answer per topic (a limit by default); `asked` records each question."""

    def check_topic(topic: str) -> str | int:
        asked.append(topic)
        return verdicts.get(topic, 1_000_000)

    return check_topic


def test_a_record_of_exactly_the_limit_passes_and_one_byte_more_is_refused_with_its_size() -> None:
    fits = record("orders", 100)
    assert too_large(fits, fits.size()) is None
    reason = too_large(fits, fits.size() - 1)
    assert reason == (
        f"record of {fits.size()} bytes exceeds the {fits.size() - 1}-byte limit of topic 'orders';"
        " raise max.message.bytes or shrink it"
    )


def test_a_refused_row_holds_the_later_rows_of_its_aggregate_whatever_their_topic() -> None:
    asked: list[str] = []
    large = record("orders", 500)  # too large for "orders"
    batch: list[Fetched] = [
        (1, ORDER_1, record("orders")),
        (2, ORDER_2, record("orders")),
        (3, ORDER_1, large),
        (4, CART_1, record("orders")),
        (5, ORDER_1, record("audit")),  # another topic: held all the same
        (6, ORDER_2, record("audit")),
        (7, ORDER_1, record("orders")),
    ]
    ok, refused = split(batch, topics({"orders": 300}, asked))
    assert [event_id for event_id, _ in ok] == [1, 2, 4, 6]
    assert refused == [(3, too_large(large, 300))]
    assert [rec for _, rec in ok] == [batch[0][2], batch[1][2], batch[3][2], batch[5][2]]
    assert asked == ["orders", "audit"], "one question per topic and batch"


def test_a_malformed_row_is_refused_with_its_reason_and_holds_its_aggregate() -> None:
    asked: list[str] = []
    bad = Malformed("column headers: value of 'x' is a number, not text; fix the row, then requeue it")
    batch: list[Fetched] = [
        (10, ORDER_1, bad),
        (11, ORDER_1, record("orders")),
        (12, ORDER_2, record("orders")),
    ]
    ok, refused = split(batch, topics({}, asked))
    assert [event_id for event_id, _ in ok] == [12]
    assert refused == [(10, bad.reason)]


def test_a_refused_topic_quarantines_the_first_row_of_each_aggregate_and_is_asked_once() -> None:
    asked: list[str] = []
    reason = "topic 'gone' does not exist and may not be created automatically: create the topic"
    batch: list[Fetched] = [
        (1, ORDER_1, record("gone")),
        (2, ORDER_2, record("gone")),
        (3, ORDER_1, record("gone")),
        (4, CART_1, record("orders")),
    ]
    ok, refused = split(batch, topics({"gone": reason}, asked))
    assert [event_id for event_id, _ in ok] == [4]
    assert refused == [(1, reason), (2, reason)]  # 3 is held behind 1, not quarantined
    assert asked == ["gone", "orders"]


def test_held_rows_ask_nothing_and_the_next_batch_asks_again() -> None:
    asked: list[str] = []
    check = topics({"orders": "refused"}, asked)
    batch: list[Fetched] = [(1, ORDER_1, record("orders")), (2, ORDER_1, record("elsewhere"))]
    assert split(batch, check) == ([], [(1, "refused")])
    assert asked == ["orders"], "a held row's topic is not asked about"
    split(batch, check)
    assert asked == ["orders", "orders"], "verdicts are kept for one batch (Preflight caches across them)"


def test_an_empty_batch_splits_into_nothing() -> None:
    assert split([], topics({}, [])) == ([], [])


# Rows of a few aggregates to a few topics: "refused" is refused, "small" takes records of up to
# SMALL bytes, "big" takes any of these; some rows are malformed.
SMALL = 150
VERDICTS: dict[str, str | int] = {"refused": "topic 'refused' is not allowed", "small": SMALL, "big": 10_000}
ROW = st.tuples(
    st.sampled_from([ORDER_1, ORDER_2, CART_1]),
    st.one_of(
        st.builds(record, st.sampled_from(sorted(VERDICTS)), st.integers(0, 120)),
        st.just(Malformed("malformed")),
    ),
)


def refusable(rec: KafkaRecord | Malformed) -> bool:
    if isinstance(rec, Malformed):
        return True
    verdict = VERDICTS[rec.topic]
    return isinstance(verdict, str) or rec.size() > verdict


def expected(batch: Sequence[Fetched]) -> tuple[set[int], set[int]]:
    """Per aggregate, in id order: published up to its first refusable row, which is quarantined;
    the rest of the aggregate is held."""
    ok: set[int] = set()
    refused: set[int] = set()
    for aggregate in {agg for _, agg, _ in batch}:
        for event_id, _, rec in sorted((row for row in batch if row[1] == aggregate), key=lambda row: row[0]):
            if refusable(rec):
                refused.add(event_id)
                break
            ok.add(event_id)
    return ok, refused


@given(st.lists(ROW, max_size=40))
def test_no_later_event_of_a_refused_aggregate_is_published_and_order_is_kept(
    rows: list[tuple[Aggregate, KafkaRecord | Malformed]],
) -> None:
    batch: list[Fetched] = [(event_id, agg, rec) for event_id, (agg, rec) in enumerate(rows, start=1)]
    asked: list[str] = []
    ok, refused = split(batch, topics(VERDICTS, asked))

    published = [event_id for event_id, _ in ok]
    quarantined = [event_id for event_id, _ in refused]
    assert published == sorted(published) and quarantined == sorted(quarantined), "batch order is kept"
    assert (set(published), set(quarantined)) == expected(batch)
    by_id = {event_id: (agg, rec) for event_id, agg, rec in batch}
    assert all(by_id[event_id][1] is rec for event_id, rec in ok), "records are passed on as they are"
    first_refusal = {}
    for event_id in quarantined:
        first_refusal.setdefault(by_id[event_id][0], event_id)
    assert len(first_refusal) == len(quarantined), "one quarantined row per aggregate and batch"
    for event_id in published:
        agg = by_id[event_id][0]
        assert agg not in first_refusal or event_id < first_refusal[agg]
    assert len(asked) == len(set(asked)), "each topic is asked about once per batch"
