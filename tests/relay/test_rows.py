"""Reading a batch row: its record, or a reason naming the column (pure logic, no database)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outbox.envelope import encode
from outbox.errors import InvalidHeaderError
from outbox.validation import checked_headers
from relay.rows import Malformed, fetched

CE_ID = "0195b4a2-6e4b-7cc1-9f00-000000000001"
GOOD: dict[str, Any] = {
    "ce_id": CE_ID,
    "ce_type": "order.placed",
    "ce_source": "shop",
    "ce_time": "2026-11-26T12:50:08.123456Z",
    "aggregate_type": "order",
    "aggregate_id": "o-1",
    "topic": "order",
    "content_type": "application/json",
    "payload": b"{}",
    "headers": {"tenant": "acme"},
    "traceparent": None,
}


def row(**changes: Any) -> tuple[Any, ...]:
    return (7, *{**GOOD, **changes}.values())


def test_a_well_formed_row_is_encoded_with_its_aggregate() -> None:
    assert fetched(row()) == (7, ("order", "o-1"), encode(*GOOD.values()))


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"headers": {"attempt": 5}}, "column headers: header 'attempt' must have a str value"),
        ({"headers": {"x": None}}, "column headers: header 'x' must have a str value"),
        ({"headers": ["a"]}, "column headers: must be a JSON object of text values, e.g. '{}', not an array"),
        ({"headers": None}, "not null"),
        ({"headers": {"ce_id": "spoofed"}}, "column headers: header name 'ce_id' belongs to the CloudEvents"),
        ({"ce_source": ""}, "column ce_source: empty"),
        ({"ce_time": "2026-11-26T12:50:08"}, "column ce_time: '2026-11-26T12:50:08' is not an RFC 3339"),
        ({"traceparent": "nope"}, "column traceparent: traceparent 'nope' is not W3C trace context"),
    ],
)
def test_a_malformed_row_is_explained_by_column(changes: dict[str, Any], said: str) -> None:
    event_id, aggregate, record = fetched(row(**changes))
    assert (event_id, aggregate) == (7, ("order", "o-1"))
    assert isinstance(record, Malformed)
    assert said in record.reason
    assert f"`outbox relay quarantine requeue {CE_ID}`" in record.reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=4,
)


@given(st.dictionaries(st.sampled_from(["a", "b", "ce_x", "bad name", "c"]), json_values, max_size=3))
def test_headers_are_accepted_exactly_when_publish_would_accept_them(headers: dict[str, Any]) -> None:
    try:
        checked_headers(headers)
        valid = True
    except InvalidHeaderError:
        valid = False
    _, _, record = fetched(row(headers=headers))
    assert isinstance(record, Malformed) != valid
