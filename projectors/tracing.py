"""Projectors' handler spans: the shared consumers' spans (outboxkit.kafka.tracing), kept here
under the names projectors have always imported."""

from outboxkit.kafka.tracing import INSTRUMENTATION, HandlerSpans, remote_context

__all__ = ["INSTRUMENTATION", "HandlerSpans", "remote_context"]
