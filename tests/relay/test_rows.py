"""Reading a batch row: its record, or a reason naming the column (pure logic, no database)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outbox.envelope import encode
from outbox.errors import InvalidHeaderError
from outbox.validation import checked_headers, checked_traceparent
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


def relay_refuses(**changes: Any) -> bool:
    return isinstance(fetched(row(**changes))[2], Malformed)


def publish_refuses(check: Callable[[Any], object], value: Any) -> bool:
    try:
        check(value)
    except InvalidHeaderError:
        return True
    return False


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
    assert relay_refuses(headers=headers) == publish_refuses(checked_headers, headers)


traceparents = st.one_of(
    st.from_regex(r"\A[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[0-9a-zA-Z]{0,3})?\Z"),
    st.builds(
        lambda version, zero_trace, zero_parent, upper: (
            (
                f"{version}-{'0' * 32 if zero_trace else '4bf92f3577b34da6a3ce929d0e0e4736'}-"
                f"{'0' * 16 if zero_parent else '00f067aa0ba902b7'}-01"
            ).upper()
            if upper
            else f"{version}-{'0' * 32 if zero_trace else '4bf92f3577b34da6a3ce929d0e0e4736'}-"
            f"{'0' * 16 if zero_parent else '00f067aa0ba902b7'}-01"
        ),
        st.sampled_from(["00", "01", "ff", "0g"]),
        st.booleans(),
        st.booleans(),
        st.booleans(),
    ),
    st.text(max_size=60),
)


@given(traceparents)
def test_traceparents_are_accepted_exactly_when_publish_would_accept_them(traceparent: str) -> None:
    # The relay takes OpenTelemetry's version-00 form by one regex; it must agree with the parser.
    assert relay_refuses(traceparent=traceparent) == publish_refuses(checked_traceparent, traceparent)


def test_a_header_name_set_seen_before_still_has_its_values_checked() -> None:
    assert not relay_refuses(headers={"tenant": "acme"})
    assert relay_refuses(headers={"tenant": 1})
    assert relay_refuses(headers={"tenant": "a\0b"})
