"""Running one input through its handler: decode, call with retries and back-off, and say what
to commit — the outputs, or a dead letter. Shared by both modes; it never commits anything.

A handler's outputs count only when it returns: those of a failed attempt are dropped, so a retry
starts from nothing. `PermanentError` and an undecodable record skip the retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from confluent_kafka import Message
from sqlalchemy import Connection

from outbox import Event
from outbox.tracing import current_traceparent
from outboxkit.kafka.errors import UndecodableRecordError
from outboxkit.kafka.records import ReceivedEvent, decode_message
from outboxkit.kafka.tracing import HandlerSpans, sdk_configured
from outboxkit.processors.errors import HandlerFailedError, PermanentError
from outboxkit.processors.lineage import linked
from outboxkit.processors.processor import Context, Processor

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

log = logging.getLogger(__name__)

INSTRUMENTATION = "outboxkit.processors"


@dataclass(frozen=True)
class Outcome:
    """What one input leads to: its outputs, or (`failure` set) its dead letter."""

    outputs: tuple[Event, ...] = ()
    failure: BaseException | None = None
    attempts: int = 0


Attempt = Callable[[Callable[[], Outcome]], Outcome]
"""Runs one attempt (mode database: inside a savepoint, rolled back when the handler fails)."""


def _bare(call: Callable[[], Outcome]) -> Outcome:
    return call()


class InputHandler:
    """Calls a processor's handlers for records, one at a time."""

    def __init__(
        self,
        processor: Processor,
        sleep: Callable[[float], None] = time.sleep,
        tracer: Tracer | None = None,
    ) -> None:
        """`tracer`: where handler spans go (default: OpenTelemetry's global provider, once an SDK
        has set one; without, handlers run bare and outputs carry their input's traceparent)."""
        self.processor = processor
        self.config = processor.config
        self._sleep = sleep
        self._spans = HandlerSpans(
            processor.name,
            processor.group_id,
            tracer,
            component="processor",
            instrumentation=INSTRUMENTATION,
        )
        self._always_traced = tracer is not None

    def handle(
        self, message: Message, connection: Connection | None = None, attempt: Attempt = _bare
    ) -> Outcome:
        """The outcome of one record; raises HandlerFailedError when the handler kept failing and
        the processor is configured to stop."""
        try:
            event = decode_message(message)
        except UndecodableRecordError as err:
            return Outcome(failure=err, attempts=1)
        handler = self.processor.handler(event.type)
        if handler is None:
            return Outcome()
        attempts = 0
        while True:
            attempts += 1
            try:
                return attempt(lambda: self._call(handler, event, connection))
            except PermanentError as err:
                return Outcome(failure=err, attempts=attempts)
            except Exception as err:
                if attempts > self.config.max_retries:
                    if self.config.on_failure == "stop":
                        raise HandlerFailedError(
                            f"processor {self.processor.name!r}: {event.type} {event.id} at "
                            f"{event.topic}[{event.partition}]@{event.offset} failed {attempts} times: {err}"
                        ) from err
                    return Outcome(failure=err, attempts=attempts)
                log.warning(
                    "handler failed at %s[%d]@%d (attempt %d): %s",
                    event.topic,
                    event.partition,
                    event.offset,
                    attempts,
                    err,
                )
                self._sleep(self.config.backoff(attempts))

    def once(self, message: Message, connection: Connection | None = None) -> Outcome:
        """One attempt, no retries: any failure (an undecodable record too) is raised. The fast
        path of mode database, which falls back to `handle` for a batch that fails."""
        event = decode_message(message)
        handler = self.processor.handler(event.type)
        return Outcome() if handler is None else self._call(handler, event, connection)

    def _call(self, handler: object, event: ReceivedEvent, connection: Connection | None) -> Outcome:
        """The handler in a CONSUMER span continuing the input's trace (its outputs carry the
        span's traceparent); bare while no SDK is configured, where a span would be a no-op and
        cost a few µs an event."""
        if self._always_traced or sdk_configured():
            with self._spans.one(event):
                return self._outcome(handler, event, connection, current_traceparent())
        return self._outcome(handler, event, connection, None)

    def _outcome(
        self, handler: object, event: ReceivedEvent, connection: Connection | None, parent: str | None
    ) -> Outcome:
        """The handler's outputs: those it emitted (linked by `emit`), then those it returned,
        linked here (an emitted output it also returns counts once). `parent`: the traceparent of
        the span the handler runs in, which the outputs continue."""
        assert callable(handler)
        context = Context(event, self.processor.name, connection, parent)
        returned = handler(event, context)
        if returned is None:
            return Outcome(tuple(context.outputs), attempts=1)
        outputs = context.outputs
        name = self.processor.name
        emitted = {id(output) for output in outputs}
        for output in [returned] if isinstance(returned, Event) else _events(returned, name):
            if id(output) not in emitted:
                outputs.append(linked(name, event, output, len(outputs), parent))
        return Outcome(tuple(outputs), attempts=1)


def log_dead_letter(message: Message, topic: str, outcome: Outcome) -> None:
    """The log line of both modes for an input dead-lettered (in the commit being made)."""
    log.error(
        "dead-lettering %s[%d]@%d to %s after %d attempts: %s",
        message.topic(),
        message.partition(),
        message.offset(),
        topic,
        outcome.attempts,
        outcome.failure,
    )


def _events(returned: Iterable[object], processor: str) -> list[Event]:
    found = list(returned)
    wrong = [type(o).__name__ for o in found if not isinstance(o, Event)]
    if wrong:
        raise PermanentError(
            f"a handler of processor {processor!r} returned {wrong}: return outbox.Event objects "
            "(or emit them with context.emit)"
        )
    return [o for o in found if isinstance(o, Event)]
