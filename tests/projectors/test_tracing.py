"""Handlers run in spans that continue the writer's trace (the envelope's `traceparent`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import Connection, Engine, text

from outbox.envelope import encode
from outboxkit.examples.sites.events import emit
from outboxkit.kafka.records import ReceivedEvent
from projectors.config import ProjectorConfig
from projectors.projector import Projector
from projectors.tracing import remote_context
from tests.optional import run_without
from tests.projectors.conftest import running, stored_total, wait_until

TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # version ff is invalid
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",  # version 00 has 4 fields
        "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",  # flags not followed by '-'
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",  # uppercase
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-+1",  # int() would take the sign
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71_9203331-01",  # int() would take the '_'
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n",  # trailing newline
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",  # short span id
        "00-0af7651916cd43dd8448eb211c80319z-b7ad6b7169203331-01",  # not hex
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero span id
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",  # no flags
    ],
)
def test_a_missing_or_malformed_traceparent_gives_no_parent(bad: str | None) -> None:
    assert remote_context(bad) is None


def test_a_later_versions_first_four_fields_are_read() -> None:
    """W3C Trace Context: a version above 00 is parsed by its first four fields."""
    context = remote_context("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-later")
    assert context is not None and (context.trace_id, context.span_id) == (int(TRACE, 16), 0xB7AD6B7169203331)


def test_a_traceparent_is_the_writers_remote_span() -> None:
    context = remote_context("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    assert context is not None and context.is_remote and context.is_valid
    assert (context.trace_id, context.span_id) == (int(TRACE, 16), 0xB7AD6B7169203331)
    assert context.trace_flags.sampled


def attributes(span: ReadableSpan) -> Mapping[str, Any]:
    return span.attributes or {}


def test_handler_spans_continue_the_writers_trace(
    engine: Engine, bootstrap_servers: str, new_topic: Callable[..., str], unique: Callable[[str], str]
) -> None:
    topic = new_topic("traced")
    # (type, subject, writer's span id or None): one-by-one events, then a run for the batch handler.
    events = [
        ("t.one", "a-0", 1),
        ("t.one", "a-1", None),
        ("t.one", "a-2", 3),
        ("t.many", "a-3", 4),
        ("t.many", "a-4", None),
        ("t.many", "a-5", 6),
    ]
    records = []
    for seq, (kind, subject, span_id) in enumerate(events):
        context = f"00-{TRACE}-{span_id:016x}-01" if span_id else None
        ce_id = f"0192e4a0-0000-7000-8000-00000000000{seq}"
        when = "2026-11-26T12:00:00.000000Z"
        record = encode(
            ce_id, kind, "svc", when, "agg", subject, topic, "application/json", b"{}", {}, context
        )
        records.append((record.key, record.value, record.headers))
    emit(bootstrap_servers, topic, records)

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    projector = Projector(unique("traced"), [topic], config=ProjectorConfig(retry_backoff=0.0))
    failed_once: list[str] = []

    @projector.handles("t.one")
    def one(event: ReceivedEvent, conn: Connection) -> None:
        conn.execute(text("SELECT 1"))
        if event.subject == "a-0" and not failed_once:
            failed_once.append(event.subject)
            raise RuntimeError("first attempt fails")

    @projector.handles("t.many", batch=True)
    def many(events: Sequence[ReceivedEvent], conn: Connection) -> None:
        conn.execute(text("SELECT 1"))

    with running(projector, engine, bootstrap_servers, tracer=provider.get_tracer("tests")):
        wait_until(lambda: stored_total(engine, projector.name) == 6, what="6 records applied")
    spans = exporter.get_finished_spans()

    by_subject: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        if "cloudevents.event_subject" in attributes(span):
            by_subject.setdefault(str(attributes(span)["cloudevents.event_subject"]), []).append(span)
    assert sorted(by_subject) == ["a-0", "a-1", "a-2"]
    for subject, span_id in (("a-0", 1), ("a-2", 3)):
        for span in by_subject[subject]:
            assert span.kind is SpanKind.CONSUMER
            assert span.name == f"process {topic}"
            assert span.parent is not None and span.parent.is_remote
            assert span.parent.span_id == span_id
            assert span.context is not None and span.context.trace_id == int(TRACE, 16)
            assert attributes(span)["messaging.destination.name"] == topic
    # a-0 failed once and then succeeded: every attempt is a span, the failure recorded on its own.
    attempts = by_subject["a-0"]
    assert [s.status.status_code for s in attempts].count(StatusCode.ERROR) == 1
    assert attempts[-1].status.status_code is not StatusCode.ERROR
    failed = next(s for s in attempts if s.status.status_code is StatusCode.ERROR)
    assert any(e.name == "exception" for e in failed.events)
    [untraced] = by_subject["a-1"]
    assert untraced.parent is None  # no trace context: a trace of its own

    batches = [s for s in spans if "messaging.batch.message_count" in attributes(s)]
    assert batches, "the batch handler ran in a span"
    assert sorted(link.context.span_id for b in batches for link in b.links) == [4, 6]  # a-4: none
    assert sum(int(attributes(b)["messaging.batch.message_count"]) for b in batches) >= 3
    assert {attributes(b)["messaging.consumer.group.name"] for b in batches} == {projector.group_id}


def test_handlers_run_bare_without_opentelemetry_installed() -> None:
    code = (
        "from outbox.envelope import encode\n"
        "from outboxkit.kafka.records import decode\n"
        "from projectors.tracing import HandlerSpans, remote_context\n"
        "tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'\n"
        "r = encode('0192e4a0-0000-7000-8000-000000000000', 't.x', 's', '2026-11-26T12:00:00.000000Z',"
        " 'a', 'a-1', 't', 'application/json', b'{}', {}, tp)\n"
        "event = decode('t', 0, 0, key=r.key, value=r.value, headers=r.headers)\n"
        "spans = HandlerSpans('p', 'g')\n"
        "assert spans.tracer is None and remote_context(tp) is None\n"
        "ran = []\n"
        "with spans.one(event): ran.append(1)\n"
        "with spans.batch([event]): ran.append(2)\n"
        "assert ran == [1, 2]\n"
        "print('ok')\n"
    )
    assert run_without("opentelemetry", code).strip() == "ok"
