"""W3C trace context from OpenTelemetry, when it is installed (an optional dependency)."""

from __future__ import annotations

try:
    from opentelemetry import trace
except ImportError:  # pragma: no cover - exercised only without the `otel` extra
    trace = None  # type: ignore[assignment]


def current_traceparent() -> str | None:
    """The `traceparent` of the current OpenTelemetry span, or None without a valid span."""
    if trace is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
