"""The envelope's decoder (pure): the lazily built event equals what the eager decoder made, and a
record refused before is refused the same way, with the same message."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest

from outbox.envelope import (
    CE_ID,
    CE_SPECVERSION,
    CE_SUBJECT,
    CE_TIME,
    CONTENT_TYPE,
    RESERVED_HEADERS,
    SPECVERSION,
    TRACEPARENT,
    ReceivedEvent,
    from_kafka,
    parse_time,
)
from outbox.errors import EnvelopeError, OutboxError

ID = "01935f1e-7b2c-7cc0-8a1e-000000000001"
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
BASE: dict[str, bytes | str | None] = {
    "ce_specversion": b"1.0",
    "ce_id": ID.encode(),
    "ce_type": b"order.placed",
    "ce_source": b"shop",
    "ce_time": b"2026-11-26T12:50:08.123456Z",
    "ce_subject": b"ord-7",
    "content-type": b"application/json",
}


def eager(
    topic: str, key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, Any]] | None, where: str
) -> ReceivedEvent:
    """The decoder as it was before the id was kept as text (the reference of these tests)."""
    try:
        found = {name: raw.decode() if isinstance(raw, bytes) else raw or "" for name, raw in headers or ()}
        text_key = (key or b"").decode()
    except UnicodeDecodeError as err:
        raise EnvelopeError(f"{where} has a header or key that is not UTF-8: {err}") from err
    missing = [n for n in ("ce_id", "ce_type", "ce_source", "ce_time", "ce_subject") if not found.get(n)]
    if missing:
        raise EnvelopeError(f"{where} is not an outboxkit event: headers {missing} missing")
    if found.get(CE_SPECVERSION) != SPECVERSION:
        raise EnvelopeError(
            f"{where} has ce_specversion {found.get(CE_SPECVERSION)!r}, expected {SPECVERSION!r}"
        )
    try:
        event_id, moment = UUID(found[CE_ID]), parse_time(found[CE_TIME])
    except ValueError as err:
        raise EnvelopeError(f"{where} has a malformed ce_id or ce_time: {err}") from err
    return ReceivedEvent(
        id=event_id,
        type=found["ce_type"],
        source=found["ce_source"],
        time=moment,
        subject=found[CE_SUBJECT],
        content_type=found.get(CONTENT_TYPE) or "application/json",
        data=value or b"",
        topic=topic,
        key=text_key,
        traceparent=found.get(TRACEPARENT),
        headers={k: v for k, v in found.items() if k not in RESERVED_HEADERS},
    )


def headers(**changes: bytes | str | None) -> list[tuple[str, bytes | str | None]]:
    """BASE with `changes` (a name with `_` for `-`; the value "drop" leaves the header out)."""
    merged = {**BASE, **{name.replace("__", "-"): value for name, value in changes.items()}}
    return [(name, value) for name, value in merged.items() if value != "drop"]


CASES: dict[str, tuple[bytes | None, bytes | None, list[tuple[str, Any]]]] = {
    "canonical": (b"ord-7", b'{"total": 1}', headers()),
    "upper-case id": (b"ord-7", b"{}", headers(ce_id=ID.upper().encode())),
    "id in braces": (b"k", b"{}", headers(ce_id=f"{{{ID}}}".encode())),
    "urn id": (b"k", b"{}", headers(ce_id=f"urn:uuid:{ID}".encode())),
    "id without hyphens": (b"k", b"{}", headers(ce_id=ID.replace("-", "").encode())),
    "id with a space": (b"k", b"{}", headers(ce_id=f" {ID}".encode())),
    "id one digit short": (b"k", b"{}", headers(ce_id=ID[:-1].encode())),
    "id not hex": (b"k", b"{}", headers(ce_id=ID.replace("0", "g").encode())),
    "id 37 characters": (b"k", b"{}", headers(ce_id=(ID + "0").encode())),
    "id empty": (b"k", b"{}", headers(ce_id=b"")),
    "no id": (b"k", b"{}", headers(ce_id="drop")),
    "no subject, no type": (b"k", b"{}", headers(ce_subject="drop", ce_type=b"")),
    "time with an offset": (b"k", b"{}", headers(ce_time=b"2026-11-26T14:50:08+02:00")),
    "time without a zone": (b"k", b"{}", headers(ce_time=b"2026-11-26T12:50:08")),
    "time that is no date": (b"k", b"{}", headers(ce_time=b"2026-02-30T12:50:08Z")),
    "time that is text": (b"k", b"{}", headers(ce_time=b"yesterday")),
    "specversion 0.3": (b"k", b"{}", headers(ce_specversion=b"0.3")),
    "no specversion": (b"k", b"{}", headers(ce_specversion="drop")),
    "values as text": (b"k", b"{}", [(n, v.decode() if isinstance(v, bytes) else v) for n, v in headers()]),
    "a value of None": (b"k", b"{}", [*headers(), ("note", None)]),
    "a header not UTF-8": (b"k", b"{}", [*headers(), ("note", b"\xff")]),
    "a key not UTF-8": (b"\xff", b"{}", headers()),
    "no key, no value": (None, None, headers()),
    "user headers and trace": (
        b"k",
        b"{}",
        [*headers(), ("zeta", b"z"), ("alpha", b"a"), (TRACEPARENT, TRACE.encode())],
    ),
    "a header twice": (b"k", b"{}", [*headers(), ("ce_subject", b"second")]),
    "no content type": (b"k", b"{}", headers(content__type="drop")),
    "charset": (b"k", b'{"a": [1]}', headers(content__type=b"application/json; charset=utf-8")),
    "not JSON content": (b"k", b"\x00\x01", headers(content__type=b"application/octet-stream")),
    "JSON that is not": (b"k", b"{nope", headers()),
    "no headers": (b"k", b"{}", []),
}


def outcome(decode: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", what `decode` returned), or the name and message of the OutboxError it raised."""
    try:
        return "ok", decode()
    except OutboxError as err:
        return type(err).__name__, str(err)


def same_event(made: ReceivedEvent, expected: ReceivedEvent) -> None:
    assert isinstance(made.id, UUID) and made.id == expected.id
    assert made.id_text == str(expected.id)
    assert isinstance(made.time, datetime) and made.time.tzinfo is not None
    for name in ("type", "source", "time", "subject", "content_type", "data", "topic", "key"):
        assert getattr(made, name) == getattr(expected, name), name
    assert made.traceparent == expected.traceparent
    assert dict(made.headers) == dict(expected.headers)
    assert made == expected and repr(made) == repr(expected)


@pytest.mark.parametrize("case", sorted(CASES))
def test_from_kafka_decodes_and_refuses_as_the_eager_decoder(case: str) -> None:
    key, value, raw = CASES[case]
    where = "record orders[2]@41"
    made = outcome(lambda: from_kafka("orders", key, value, raw, where=where))
    expected = outcome(lambda: eager("orders", key, value, raw, where))
    assert made[0] == expected[0]
    if made[0] == "ok":
        same_event(made[1], expected[1])
    else:
        assert made[1] == expected[1]
