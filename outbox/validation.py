"""Checks that an event can travel: run at publish() time, inside the caller's transaction."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from outbox.envelope import RESERVED_HEADERS, render_time
from outbox.errors import InvalidEventError, InvalidHeaderError
from outbox.tracing import parse_traceparent

MAX_TEXT = 1024
# Kafka header names are free text; ours are restricted to what HTTP, AMQP and Connect all accept.
# Used with fullmatch: `$` would also match before a trailing newline.
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


_KNOWN_LIMIT = 4096
"""How many passed texts and header names are remembered (publish() sees the same event types,
aggregate types, sources and header names over and over: a set lookup instead of the checks)."""
_passed_texts: set[str] = set()
_passed_header_names: set[str] = set()


def _remember(known: set[str], value: str) -> None:
    if len(known) < _KNOWN_LIMIT:
        known.add(value)


def _encodable(text: str) -> bool:
    # PostgreSQL text and jsonb cannot hold NUL; lone surrogates cannot be encoded as UTF-8.
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def required_text(field: str, value: Any) -> str:
    """`value` as non-empty, storable text of at most MAX_TEXT characters."""
    if type(value) is str and value in _passed_texts:
        return value
    if isinstance(value, int | UUID) and not isinstance(value, bool):
        value = str(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidEventError(
            f"event {field} is missing or empty (got {value!r}); set it to a non-empty string"
        )
    if not isinstance(value, str):
        # A float's or a bool's text is not the key anyone means (1.5 vs 1.50, True): say so.
        raise InvalidEventError(
            f"event {field} must be a str, an int or a uuid.UUID, got {type(value).__name__}"
            f" {value!r}; pass the text consumers should see as the key, e.g. str(...) of your id"
        )
    if len(value) > MAX_TEXT or not _encodable(value):
        raise InvalidEventError(
            f"event {field} {value[:80]!r}... must be at most {MAX_TEXT} characters of UTF-8 text "
            "without NUL characters"
        )
    _remember(_passed_texts, value)
    return value


def checked_headers(headers: Any) -> dict[str, str]:
    """User headers as a plain dict, refusing names the envelope owns and non-text values."""
    if not isinstance(headers, Mapping):
        raise InvalidHeaderError(
            f"event headers must be a mapping of str to str, got {type(headers).__name__}"
        )
    result: dict[str, str] = {}
    for name, value in headers.items():
        if type(name) is str and name in _passed_header_names:
            pass
        elif not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise InvalidHeaderError(
                f"header name {name!r} is not allowed: use 1-255 characters of [A-Za-z0-9._-], "
                "starting with a letter or digit"
            )
        elif name.lower() in RESERVED_HEADERS or name.lower().startswith("ce_"):
            raise InvalidHeaderError(
                f"header name {name!r} belongs to the CloudEvents envelope; set the matching "
                "Event field instead, or rename the header"
            )
        else:
            _remember(_passed_header_names, name)
        if not isinstance(value, str) or not _encodable(value):
            raise InvalidHeaderError(
                f"header {name!r} must have a str value of UTF-8 text without NUL characters, "
                f"got {type(value).__name__}; convert it to text (for bytes: base64)"
            )
        result[name] = value
    return result


def checked_traceparent(value: Any) -> str | None:
    """A W3C traceparent (`00-<32 hex>-<16 hex>-<2 hex>`, outbox.tracing.parse_traceparent) or None."""
    if value is None:
        return None
    if parse_traceparent(value) is None:
        raise InvalidHeaderError(
            f"traceparent {value!r} is not W3C trace context: <version>-<trace id>-<parent id>-<flags>"
            " in lowercase hex of 2-32-16-2 digits, version not ff, ids not all zero, version 00 with"
            " exactly these four fields; pass None to leave it out"
        )
    return str(value)


def _require(field: str, value: Any, kind: type, hint: str) -> None:
    if not isinstance(value, kind):
        raise InvalidEventError(
            f"event {field} must be a {kind.__module__}.{kind.__name__}, got {type(value).__name__} "
            f"{value!r}; {hint}"
        )


def checked_id(value: Any) -> str:
    """The event id as the text of a UUID (the `ce_id` column is a uuid)."""
    if type(value) is UUID:  # what Event makes and a processor derives: no subclass to doubt
        return str(value)
    _require("id", value, UUID, "leave it out to get a fresh UUIDv7, or pass UUID(text)")
    return str(value)


def rendered_time(value: Any) -> str:
    """`occurred_at` as the RFC 3339 `ce_time`; it must be a timezone-aware datetime within years 1-9999."""
    if type(value) is datetime and value.tzinfo is UTC:  # Event's default: nothing to convert
        return render_time(value)
    _require("occurred_at", value, datetime, "pass a timezone-aware one (datetime.now(UTC)) or leave it out")
    # Python counts a datetime whose tzinfo gives no offset as naive too; astimezone() would then
    # take the machine's local zone: refuse it rather than guess.
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidEventError(
            "event occurred_at is a naive datetime; pass a timezone-aware one (datetime.now(UTC))"
        )
    try:
        return render_time(value)
    except OverflowError as err:  # in UTC it falls before year 1 or after year 9999
        raise InvalidEventError(
            f"event occurred_at {value!r} is out of range in UTC ({err}); pass a timezone-aware "
            "datetime between years 1 and 9999 in UTC"
        ) from err
