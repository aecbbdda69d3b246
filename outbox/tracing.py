"""W3C trace context: the one `traceparent` parser of the toolkit, and the current OpenTelemetry span's
traceparent when OpenTelemetry is installed (an optional dependency)."""

from __future__ import annotations

import re
from dataclasses import dataclass

try:
    from opentelemetry import trace
except ImportError:  # pragma: no cover - exercised only without the `otel` extra
    trace = None  # type: ignore[assignment]

# version-traceid-parentid-flags, lowercase hex only (W3C Trace Context, section 3.2). Matched at the
# start and the rest checked by hand: a later version may append fields after a '-'.
_FIELDS = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_LATER_FIELDS = re.compile(r"-[\x21-\x7e]*")  # visible ASCII: what an HTTP header value may carry


@dataclass(frozen=True)
class TraceParent:
    """A parsed `traceparent`: the fields of version 00 (a later version's first four)."""

    version: int
    trace_id: int
    parent_id: int
    flags: int


def parse_traceparent(value: object) -> TraceParent | None:
    """The trace context in `value`, or None when it is not a valid W3C `traceparent`.

    Invalid: anything but lowercase hex in the 2-32-16-2 layout, version ff, an all-zero trace id or
    parent id, and a version 00 value with more than four fields. A later version is read by its
    first four fields, which must be followed by the end or by '-' (the spec's forward compatibility).
    """
    if not isinstance(value, str):
        return None
    found = _FIELDS.match(value)
    if found is None:
        return None
    version, trace_id, parent_id, flags = found.groups()
    rest = value[found.end() :]
    if version == "ff" or (rest and (version == "00" or not _LATER_FIELDS.fullmatch(rest))):
        return None
    parsed = TraceParent(int(version, 16), int(trace_id, 16), int(parent_id, 16), int(flags, 16))
    if not parsed.trace_id or not parsed.parent_id:
        return None
    return parsed


def current_traceparent() -> str | None:
    """The `traceparent` of the current OpenTelemetry span, or None without a valid span."""
    if trace is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
