"""The consumers' decoder (pure): records.decode equals the eager decoder of before (the event,
its JSON payload and position), refuses the same records with the same messages, and its events
behave as dataclasses."""

from __future__ import annotations

import copy
import pickle
from typing import Any
from uuid import UUID

import orjson
import pytest

from outbox.errors import EnvelopeError
from outboxkit.kafka import records
from outboxkit.kafka.errors import UndecodableRecordError
from tests.outbox.test_envelope_decode import CASES, ID, eager, outcome, same_event


def eager_consumer_event(key: bytes | None, value: bytes | None, raw: list[tuple[str, Any]]) -> Any:
    where = "record orders[2]@41"
    try:
        event = eager("orders", key, value, raw, where)
    except EnvelopeError as err:
        raise UndecodableRecordError(str(err)) from err
    payload = None
    if event.content_type.split(";", 1)[0].strip() == "application/json":
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError as err:
            raise UndecodableRecordError(f"{where} has a payload that is not JSON: {err}") from err
    return records.ReceivedEvent(**vars(event), payload=payload, partition=2, offset=41)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("as_mapping", [False, True])
def test_the_consumers_decoder_equals_the_eager_one(case: str, as_mapping: bool) -> None:
    key, value, raw = CASES[case]
    given: Any = dict(raw) if as_mapping else raw
    made = outcome(lambda: records.decode("orders", 2, 41, key=key, value=value, headers=given))
    expected = outcome(
        lambda: eager_consumer_event(key, value, list(dict(raw).items()) if as_mapping else raw)
    )
    assert made[0] == expected[0]
    if made[0] != "ok":
        assert made[1] == expected[1]
        return
    same_event(made[1], expected[1])
    assert (made[1].payload, made[1].partition, made[1].offset) == (expected[1].payload, 2, 41)


def test_a_decoded_event_copies_pickles_and_refuses_changes_like_a_dataclass() -> None:
    key, value, raw = CASES["canonical"]
    event = records.decode("orders", 2, 41, key=key, value=value, headers=raw)
    assert "id" not in vars(event), "the id is parsed when read"
    for other in (copy.copy(event), copy.deepcopy(event), pickle.loads(pickle.dumps(event))):
        assert other == event and other.id == UUID(ID)
    with pytest.raises(AttributeError):
        event.id = UUID(int=1)  # type: ignore[misc]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        event.nothing  # type: ignore[attr-defined]  # noqa: B018
    assert event.id == UUID(ID) and vars(event)["id"] == UUID(ID), "parsed once, then kept"
    made = records.ReceivedEvent(**{**{k: v for k, v in vars(event).items() if k != "_id_text"}})
    assert made == event and made.id_text == ID
