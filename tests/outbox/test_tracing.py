"""The write side works when OpenTelemetry is not installed (capture from a span: test_publish.py)."""

from __future__ import annotations

from tests.optional import run_without


def test_write_side_without_opentelemetry_installed() -> None:
    code = (
        "from outbox import Event\n"
        "from outbox.tracing import current_traceparent\n"
        "assert current_traceparent() is None\n"
        "assert Event(type='t', aggregate_type='a', aggregate_id='1', payload={}).traceparent is None\n"
        "print('ok')\n"
    )
    assert run_without("opentelemetry", code).strip() == "ok"
