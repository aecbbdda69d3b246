"""Arbitrary payloads and headers: each is stored byte for byte, or refused with OutboxError."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import hypothesis
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from outbox import BytesSerializer, Event, Outbox, OutboxError, publish
from outbox.envelope import parse_time

JSON_OUTBOX = Outbox(notify_channel=None)
BYTES_OUTBOX = Outbox(serializer=BytesSerializer(), notify_channel=None)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
json_like = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=4)
    ),
    max_leaves=20,
)
headers = st.dictionaries(st.text(max_size=12), st.text(max_size=20) | st.binary(max_size=4), max_size=4)
settings_ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def attempt(
    engine: Engine, outbox: Outbox, event: Event, columns: str = "payload, headers"
) -> tuple[bool, list[Any]]:
    """Publish in a transaction that is rolled back; (refused?, `columns` of the rows it saw)."""
    with engine.connect() as conn:
        try:
            publish(conn, event, outbox=outbox)
            refused = False
        except OutboxError:
            refused = True
        rows = conn.execute(
            text(f"SELECT {columns} FROM outbox_events WHERE ce_id = :id"), {"id": event.id}
        ).all()
        conn.rollback()
    return refused, rows


@settings_
@given(payload=json_like, user_headers=headers)
def test_json_payload_is_stored_exactly_or_refused(
    engine: Engine, payload: Any, user_headers: dict[str, Any]
) -> None:
    event = Event(type="t", aggregate_type="a", aggregate_id="1", payload=payload, headers=user_headers)
    refused, rows = attempt(engine, JSON_OUTBOX, event)
    hypothesis.event("refused" if refused else "stored")
    if refused:
        assert rows == []
        return
    [(stored, stored_headers)] = rows
    assert bytes(stored) == orjson.dumps(payload)
    assert orjson.loads(bytes(stored)) == payload  # and it means the same thing
    assert stored_headers == user_headers


@settings_
@given(payload=st.binary(max_size=2048), aggregate_id=st.text(min_size=1, max_size=30))
def test_bytes_payload_round_trips_byte_for_byte(engine: Engine, payload: bytes, aggregate_id: str) -> None:
    event = Event(type="t", aggregate_type="a", aggregate_id=aggregate_id, payload=payload)
    refused, rows = attempt(engine, BYTES_OUTBOX, event)
    hypothesis.event("refused" if refused else "stored")
    if refused:
        assert rows == []
        return
    assert [bytes(row[0]) for row in rows] == [payload]


# Any offset Python allows (up to a day either way), or none: naive datetimes must be refused.
zones = st.none() | st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
).map(timezone)
# Mostly legal characters, so that valid topics are drawn too; around the 249-character limit.
topics = st.text(alphabet=st.sampled_from("ab.Z9_-\n /") | st.characters(), min_size=0, max_size=252)


@settings_
@given(moment=st.datetimes(timezones=zones), topic=st.none() | topics)
def test_time_and_topic_are_stored_exactly_or_refused(
    engine: Engine, moment: datetime, topic: str | None
) -> None:
    event = Event(type="t", aggregate_type="a", aggregate_id="1", payload={}, occurred_at=moment, topic=topic)
    refused, rows = attempt(engine, JSON_OUTBOX, event, columns="ce_time, topic")
    hypothesis.event("refused" if refused else "stored")
    if refused:
        assert rows == []
        return
    [(ce_time, stored_topic)] = rows
    assert moment.utcoffset() is not None
    assert parse_time(ce_time) == moment
    assert stored_topic == (topic or "a")
    assert re.fullmatch(r"[a-zA-Z0-9._-]{1,249}", stored_topic) and stored_topic not in (".", "..")
