"""A batch row as the relay reads it: its Kafka record, or what is wrong with the row.

publish() validates every event (outbox/validation.py), so a row it wrote always encodes. A row
written by hand (SQL, a data migration, another tool) may not: a header value that is not text
makes encode() raise, and a relay that let it propagate would die on that row, restart, and die on
it again. So each row is checked as it is read, cheaply: what encode() needs, and what a consumer's
from_kafka() would refuse (empty required fields, a ce_time without a time zone) or misread (a user
header named like an envelope header). A row that fails gets the slow diagnosis below, which names
the column and says what to do, and the relay quarantines it like any poison event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from outbox.envelope import KafkaRecord, encode, parse_time
from outbox.errors import InvalidHeaderError
from outbox.validation import checked_headers, checked_traceparent

Row = tuple[Any, ...]
"""`id`, then relay.sql.EVENT_COLUMNS: the columns of StoredEvent, in its field order."""

Aggregate = tuple[str, str]
"""(aggregate_type, aggregate_id): what a quarantined event holds back."""


@dataclass(frozen=True)
class Malformed:
    """A row that cannot become a Kafka record, and why (what is wrong, what to do)."""

    reason: str


Fetched = tuple[int, Aggregate, KafkaRecord | Malformed]
"""One row of a batch: its id, its aggregate (the record does not carry the aggregate type) and
its record, or why it has none."""

_TRACEPARENT_00 = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
"""A valid version-00 traceparent, as OpenTelemetry writes them: one regex instead of the parser."""
_CHECKED_NAMES: set[tuple[str, ...]] = set()
"""Lists of header names already found valid: a service's rows mostly carry the same few."""
_CHECKED_NAMES_MAX = 1000

_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


def fetched(row: Row) -> Fetched:
    """The row's id, aggregate and record; a Malformed reason instead of a record if it has none."""
    (
        event_id,
        _,
        ce_type,
        ce_source,
        ce_time,
        aggregate_type,
        aggregate_id,
        _,
        content_type,
        _,
        headers,
        traceparent,
    ) = row
    try:
        # The checks a well-formed row passes quickly: the relay reads tens of thousands a second.
        if (
            ce_type
            and ce_source
            and aggregate_type
            and aggregate_id
            and content_type
            and type(headers) is dict
        ):
            parse_time(ce_time)
            if headers:
                _check_headers(headers)
            if traceparent is not None and not _TRACEPARENT_00.fullmatch(traceparent):
                checked_traceparent(traceparent)  # the full W3C check: a later version, or refusal
            return event_id, (aggregate_type, aggregate_id), encode(*row[1:])
    except (AttributeError, TypeError, ValueError):  # InvalidHeaderError is a ValueError
        pass
    return event_id, (aggregate_type, aggregate_id), Malformed(explain(row))


def _check_headers(headers: dict[str, Any]) -> None:
    """checked_headers() for a batch row, names checked once per list of names. A value that is not
    text raises; one that is not UTF-8 makes encode() raise."""
    names = tuple(headers)
    if names not in _CHECKED_NAMES:
        checked_headers(headers)
        if len(_CHECKED_NAMES) < _CHECKED_NAMES_MAX:
            _CHECKED_NAMES.add(names)
        return
    for value in headers.values():
        if type(value) is not str or "\x00" in value:
            raise TypeError("header value")


def explain(row: Row) -> str:
    """Why `row` cannot be published, naming the column, and how to put it right."""
    ce_id = row[1]
    return (
        f"malformed outbox row (written without publish()?): {_problem(row)}. Correct it in "
        f"outbox_quarantine (UPDATE outbox_quarantine SET ... WHERE ce_id = '{ce_id}'), then "
        f"`outbox relay quarantine requeue {ce_id}`; or drop it: `outbox relay quarantine discard {ce_id}`"
    )


def _problem(row: Row) -> str:
    (
        _,
        _,
        ce_type,
        ce_source,
        ce_time,
        aggregate_type,
        aggregate_id,
        _,
        content_type,
        _,
        headers,
        traceparent,
    ) = row
    required = {
        "ce_type": ce_type,
        "ce_source": ce_source,
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "content_type": content_type,
    }
    empty = [name for name, value in required.items() if not value]
    if empty:
        return f"column {empty[0]}: empty; every event needs one (publish() refuses it)"
    return _time_problem(ce_time) or _header_problem(headers, traceparent) or _encoding_problem(row)


def _time_problem(ce_time: Any) -> str | None:
    try:
        parse_time(ce_time)
    except ValueError:
        return (
            f"column ce_time: {ce_time!r} is not an RFC 3339 timestamp with a time zone,"
            " e.g. '2026-11-26T12:50:08.123456Z'"
        )
    return None


def _header_problem(headers: Any, traceparent: Any) -> str | None:
    if type(headers) is not dict:
        kind = "null" if headers is None else _JSON_TYPES.get(type(headers), type(headers).__name__)
        return f"column headers: must be a JSON object of text values, e.g. '{{}}', not {kind}"
    try:
        checked_headers(headers)
    except InvalidHeaderError as err:
        return f"column headers: {err}"
    try:
        checked_traceparent(traceparent)
    except InvalidHeaderError as err:
        return f"column traceparent: {err}"
    return None


def _encoding_problem(row: Row) -> str:
    try:
        encode(*row[1:])
    except (AttributeError, TypeError, ValueError) as err:
        return f"it cannot be encoded ({type(err).__name__}: {err})"
    return "it failed a check that passes on its own; please report this row"
