"""KV values on the wire (pure): bytes as they are, JSON through the write side's serializer, and
a reader's decoding by content type."""

from __future__ import annotations

import pytest

from outbox.serialization import BytesSerializer, JsonSerializer
from outboxkit.kv.values import UndecodableValueError, content_type_of, decode_value, encode_value


def test_bytes_go_as_they_are_and_the_rest_through_the_serializer() -> None:
    assert encode_value(b"\x00raw", JsonSerializer()) == (
        b"\x00raw",
        [("content-type", b"application/octet-stream")],
    )
    assert encode_value({"a": [1, "ü"]}, JsonSerializer()) == (
        '{"a":[1,"ü"]}'.encode(),
        [("content-type", b"application/json")],
    )
    assert encode_value(b"x", BytesSerializer("application/x-protobuf"))[0] == b"x"


@pytest.mark.parametrize(
    ("content_type", "data", "expected"),
    [
        ("application/json", b'{"a":1}', {"a": 1}),
        ("application/json; charset=utf-8", b"[1]", [1]),
        ("application/cloudevents+json", b'"s"', "s"),
        ("APPLICATION/JSON", b"2", 2),
        ("application/octet-stream", b"{not json", b"{not json"),
        ("text/plain", b"hello", b"hello"),
        (None, b"true", True),
    ],
)
def test_values_are_decoded_by_their_content_type(
    content_type: str | None, data: bytes, expected: object
) -> None:
    assert decode_value(data, content_type) == expected


def test_a_value_that_is_not_what_its_content_type_says_is_refused() -> None:
    with pytest.raises(UndecodableValueError, match="not JSON"):
        decode_value(b"{not json", "application/json")


def test_the_content_type_header_is_found_in_every_shape_of_headers() -> None:
    assert content_type_of([("ce_id", b"1"), ("content-type", b"application/json")]) == "application/json"
    assert content_type_of({"content-type": "text/plain"}) == "text/plain"
    assert content_type_of(None) is None and content_type_of([("other", None)]) is None
