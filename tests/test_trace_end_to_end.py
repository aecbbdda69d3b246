"""One trace from the writing request to the projector: publish() inside a span, the polling relay
(a real `outbox relay run` process), the projector's handler span a child of the writer's span."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Connection, text

from outbox import Event, Outbox, TopicRouter, migrations, publish
from outboxkit.kafka.records import ReceivedEvent
from projectors.projector import Projector
from tests.projectors.conftest import running, stored_total, wait_until
from tests.relay.conftest import RelayProcess
from tests.relay.events import engine_for


def test_the_projector_continues_the_writers_trace_through_the_relay(
    new_database: Callable[[], str],
    bootstrap_servers: str,
    new_topic: Callable[..., str],
    unique: Callable[[str], str],
    tmp_path: Path,
) -> None:
    url = new_database()
    migrations.upgrade(url)
    topic = new_topic("e2e-trace")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("shop")

    engine = engine_for(url)
    outbox = Outbox(router=TopicRouter(topic))
    writers: dict[str, tuple[int, int]] = {}  # order id -> (trace id, span id) of its request
    for order in ("o-1", "o-2", "o-3"):
        with tracer.start_as_current_span(f"POST /orders/{order}") as request, engine.begin() as conn:
            publish(
                conn,
                Event(type="order.placed", aggregate_type="order", aggregate_id=order, payload={}),
                outbox=outbox,
            )
            writers[order] = (request.get_span_context().trace_id, request.get_span_context().span_id)

    relay = RelayProcess(
        {
            **os.environ,
            "OUTBOX_DATABASE_URL": url,
            "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
            "OUTBOX_RELAY_GROUP": unique("e2e"),
            "OUTBOX_RELAY_POLL_INTERVAL": "0.2",
            "OUTBOX_RELAY_METRICS_PORT": "0",
        },
        tmp_path / "relay.log",
    ).start()
    try:
        projector = Projector(unique("orders"), [topic])

        @projector.handles("order.placed")
        def placed(event: ReceivedEvent, conn: Connection) -> None:
            conn.execute(text("SELECT 1"))

        with running(projector, engine, bootstrap_servers, tracer=tracer):
            wait_until(lambda: stored_total(engine, projector.name) == 3, what="3 events projected")
    finally:
        relay.kill()

    handled = {
        str((span.attributes or {})["cloudevents.event_subject"]): span
        for span in exporter.get_finished_spans()
        if "cloudevents.event_subject" in (span.attributes or {})
    }
    assert sorted(handled) == ["o-1", "o-2", "o-3"]
    for order, (trace_id, span_id) in writers.items():
        span = handled[order]
        assert span.context is not None and span.context.trace_id == trace_id, order
        assert span.parent is not None and span.parent.span_id == span_id, order
