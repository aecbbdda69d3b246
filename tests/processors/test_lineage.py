"""Derived ids (pure): the fast UUIDv5 of lineage.py gives exactly uuid.uuid5's ids, for every input."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import uuid
from datetime import UTC

import pytest
from confluent_kafka import Message

from outbox import Event, Outbox, TopicRouter
from outbox.envelope import to_kafka
from outboxkit.kafka.records import ReceivedEvent, decode
from outboxkit.processors.handling import InputHandler
from outboxkit.processors.lineage import NAMESPACE, derived_id, idempotency_key, linked
from outboxkit.processors.processor import Context, Processor

NAMES = ["payments", "inventory.v2", "p_1-x", "zahlungen-äöü", "多语言", "p" * 100]
CAUSES = [
    "01935f1e-7b2c-7cc0-8a1e-000000000001",
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    str(uuid.uuid4()),
    str(uuid.uuid4()),
]


@pytest.mark.parametrize("processor", NAMES)
def test_derived_ids_are_uuid5_of_processor_cause_and_index(processor: str) -> None:
    for cause in CAUSES:
        for index in (0, 1, 9, 10, 12345):
            expected = uuid.uuid5(NAMESPACE, f"{processor}/{cause}/{index}")
            made = derived_id(processor, cause, index)
            assert made == expected and made.version == 5 and made.variant == uuid.RFC_4122
            assert str(made) == str(expected) and made.bytes == expected.bytes
            assert hash(made) == hash(expected) and made.is_safe == expected.is_safe
            assert pickle.loads(pickle.dumps(made)) == expected and copy.copy(made) == expected
        assert derived_id(processor, cause, "key") == uuid.uuid5(NAMESPACE, f"{processor}/{cause}/key")


def placed(ce_id: str, headers: dict[str, str] | None = None) -> Event:
    return Event(
        type="order.placed",
        aggregate_type="orders",
        aggregate_id="o-1",
        payload={"n": 1},
        id=uuid.UUID(ce_id),
        headers=headers or {},
    )


def received(ce_id: str, headers: dict[str, str] | None = None) -> ReceivedEvent:
    record = to_kafka(Outbox(router=TopicRouter()).prepare(placed(ce_id, headers)))
    # The header as another producer may write it: in upper case (uuid.UUID reads it).
    raw = [(n, v.upper() if n == "ce_id" and ce_id.isupper() else v) for n, v in record.headers]
    return decode("orders", 3, 41, key=record.key, value=record.value, headers=raw)


@pytest.mark.parametrize("ce_id", [*CAUSES[:4], CAUSES[3].upper()])
def test_linked_ids_and_idempotency_keys_are_those_of_uuid5(ce_id: str) -> None:
    event = received(ce_id)
    canonical = str(uuid.UUID(ce_id))
    output = Event(type="t", aggregate_type="a", aggregate_id="1", payload={}, id=uuid.UUID(int=0))
    for index in (0, 1, 2):
        made = linked("payments", event, output, index)
        assert made.id == uuid.uuid5(NAMESPACE, f"payments/{canonical}/{index}")
        assert made.headers["causation_id"] == canonical == made.headers["correlation_id"]
    key = idempotency_key("payments", event)
    assert key == str(uuid.uuid5(NAMESPACE, f"payments/{canonical}/key"))


def test_an_emitted_output_is_the_event_its_fields_make() -> None:
    """emit() makes its Event without __init__ (lineage.assembled), linked at once: each field of
    Event must be there, as Event(...) would set it, with the lineage linked() would give it."""
    event = received(CAUSES[0], headers={"correlation_id": "flow-1"})
    context = Context(event, "payments")
    emitted = context.emit("payment.done", {"n": 1}, aggregate_type="payments", headers={"h": "v"})
    fields = {field.name for field in dataclasses.fields(Event)}
    assert set(vars(emitted)) == fields
    unlinked = Event(
        type="payment.done",
        aggregate_type="payments",
        aggregate_id=event.subject,
        payload={"n": 1},
        headers={"h": "v"},
        occurred_at=emitted.occurred_at,
        traceparent=None,
    )
    assert emitted == linked("payments", event, unlinked, 0)
    assert emitted.headers == {"causation_id": CAUSES[0], "correlation_id": "flow-1", "h": "v"}
    assert emitted.occurred_at.tzinfo is UTC and emitted.source == "payments"
    second = context.emit("payment.noted", {}, aggregate_type="payments")
    assert second.id == uuid.uuid5(NAMESPACE, f"payments/{CAUSES[0]}/1")


def test_emitted_then_returned_outputs_are_numbered_in_order_and_counted_once() -> None:
    """Outputs a handler returns come after those it emitted (their index, so their derived id,
    goes on from there); returning an emitted output does not send it twice."""
    processor = Processor("payments", ["orders"])

    @processor.handles("order.placed")
    def handle(event: ReceivedEvent, context: Context) -> list[Event]:
        kept = context.emit("payment.started", {}, aggregate_type="payments")
        extra = Event(type="payment.noted", aggregate_type="payments", aggregate_id="p-1", payload={})
        return [kept, extra]

    record = to_kafka(Outbox(router=TopicRouter()).prepare(placed(CAUSES[1])))
    message = Message(
        topic=record.topic, partition=0, offset=0, key=record.key, value=record.value, headers=record.headers
    )
    outcome = InputHandler(processor).handle(message)
    assert [o.type for o in outcome.outputs] == ["payment.started", "payment.noted"]
    assert [o.id for o in outcome.outputs] == [
        uuid.uuid5(NAMESPACE, f"payments/{CAUSES[1]}/{i}") for i in range(2)
    ]
