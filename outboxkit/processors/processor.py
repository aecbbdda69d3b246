"""A processor: a name, its input topics, a mode, and one handler per event type."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from sqlalchemy import Connection

from outbox import Event
from outbox.errors import ConfigurationError
from outbox.routing import topic_problem
from outboxkit.kafka.records import ReceivedEvent
from outboxkit.ops.references import load_reference
from outboxkit.processors.config import ProcessorConfig
from outboxkit.processors.errors import ProcessorNotFoundError
from outboxkit.processors.lineage import assembled, derived_id, idempotency_key, lineage_headers

Mode = Literal["kafka", "database"]
MODES: tuple[Mode, ...] = ("kafka", "database")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass
class Context:
    """What a handler gets besides the event. Handlers add outputs with `emit` or return them."""

    event: ReceivedEvent
    processor: str
    connection: Connection | None = None
    """Mode database: the transaction the handler's writes, its outputs and the input positions
    commit in (never commit it). Mode kafka: None."""
    traceparent: str | None = None
    """The span the handler runs in (its CONSUMER span, with tracing), which outputs continue;
    None: they continue the input's trace."""
    outputs: list[Event] = field(default_factory=list)

    @property
    def idempotency_key(self) -> str:
        """Stable for this input event and this processor: pass it to third parties (a payment
        provider's Idempotency-Key), so a handler run again after a crash does not act twice."""
        return idempotency_key(self.processor, self.event)

    def emit(
        self,
        type: str,
        payload: Any,
        *,
        aggregate_type: str,
        aggregate_id: str | None = None,
        topic: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Event:
        """Add an output event, with its lineage (outboxkit.processors.lineage: an id derived
        from the input's and its place among the input's outputs, causation and correlation
        headers, the trace continued); its key is `aggregate_id`, by default the input's subject,
        so outputs keep the input key's order."""
        event = self.event
        output = assembled(  # lineage.linked(Event(...) of these fields): one Event, not two
            {
                "type": type,
                "aggregate_type": aggregate_type,
                "aggregate_id": aggregate_id if aggregate_id is not None else event.subject,
                "payload": payload,
                "headers": lineage_headers(event, headers),
                "id": derived_id(self.processor, event.id_text, len(self.outputs)),
                "occurred_at": datetime.now(UTC),
                "source": self.processor,
                "traceparent": self.traceparent or event.traceparent,
                "topic": topic,
            }
        )
        self.outputs.append(output)
        return output


Handler = Callable[[ReceivedEvent, Context], "Iterable[Event] | Event | None"]
"""Handles one event: returns output events (or emits them through the context), or None."""

F = TypeVar("F", bound=Callable[..., Any])


class Processor:
    """Declares a consume-transform-produce step; `outbox processor run` runs it.

    Mode `kafka`: outputs go to Kafka in the transaction that commits the input offsets. Mode
    `database`: handlers get the database connection; their writes, the outputs (written to the
    outbox) and the input positions commit in one PostgreSQL transaction. Events of types without
    a handler are passed over (their offsets still move on).
    """

    def __init__(
        self,
        name: str,
        topics: Sequence[str],
        *,
        mode: Mode = "kafka",
        config: ProcessorConfig | None = None,
    ) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigurationError(
                f"processor name {name!r}: use 1-100 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        if not topics or isinstance(topics, str):
            raise ConfigurationError(f"processor {name!r} reads no topic: pass a list of topic names")
        for topic in topics:
            problem = topic_problem(topic)
            if problem is not None:
                raise ConfigurationError(f"processor {name!r} topic {problem}")
        if mode not in MODES:
            raise ConfigurationError(f"processor {name!r}: mode must be 'kafka' or 'database', not {mode!r}")
        self.name = name
        self.topics = tuple(topics)
        self.mode: Mode = mode
        self.config = config or ProcessorConfig()
        self._handlers: dict[str, Handler] = {}

    def handles(self, *event_types: str) -> Callable[[F], F]:
        """Decorator: register the function for these `ce_type`s."""

        def register(function: F) -> F:
            for event_type in event_types:
                if event_type in self._handlers:
                    raise ConfigurationError(f"processor {self.name!r} has two handlers for {event_type!r}")
                self._handlers[event_type] = function
            return function

        return register

    def handler(self, event_type: str) -> Handler | None:
        return self._handlers.get(event_type)

    @property
    def group_id(self) -> str:
        return self.config.group_id or f"outboxkit-processor-{self.name}"

    def __repr__(self) -> str:
        return f"Processor({self.name!r}, topics={list(self.topics)!r}, mode={self.mode!r})"


def load_processor(reference: str) -> Processor:
    """Resolve `package.module:attribute` to a Processor; the attribute may also be a function
    without arguments that returns one (a factory reading its settings from the environment)."""
    return load_reference(reference, Processor, ProcessorNotFoundError)
