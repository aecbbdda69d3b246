"""A projector: a name, the topics it reads, and one handler per event type."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Connection, MetaData

from outbox.errors import ConfigurationError
from outbox.routing import topic_problem
from outboxkit.kafka.records import ReceivedEvent
from outboxkit.ops.references import load_reference
from projectors.config import ProjectorConfig
from projectors.errors import ProjectorNotFoundError

EventHandler = Callable[[ReceivedEvent, Connection], None]
"""Applies one event inside the batch's transaction (the runtime commits; handlers never do)."""
BatchHandler = Callable[[Sequence[ReceivedEvent], Connection], None]
"""Applies a run of consecutive events of one type at once (e.g. one executemany)."""

F = TypeVar("F", bound=Callable[..., None])
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # fullmatch: `$` lets "name\n" through


@dataclass(frozen=True)
class Handler:
    """A registered handler: `batch` ones take a list of events, the others one event."""

    function: Callable[..., None]
    batch: bool


class Projector:
    """Declares a projection; `ProjectorRunner` runs it and `rebuild()` rebuilds its read model.

    `metadata` holds the read-model tables (without a schema); rebuild needs it to build them afresh.
    Events of types without a handler are skipped (their offsets are still stored).
    """

    def __init__(
        self,
        name: str,
        topics: Sequence[str],
        *,
        metadata: MetaData | None = None,
        config: ProjectorConfig | None = None,
    ) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigurationError(
                f"projector name {name!r}: use 1-100 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        if not topics or isinstance(topics, str):
            raise ConfigurationError(f"projector {name!r} reads no topic: pass a list of topic names")
        for topic in topics:
            problem = topic_problem(topic)
            if problem is not None:
                raise ConfigurationError(f"projector {name!r} topic {problem}")
        self.name = name
        self.topics = tuple(topics)
        self.metadata = metadata
        self.config = config or ProjectorConfig()
        self._handlers: dict[str, Handler] = {}

    def handles(self, *event_types: str, batch: bool = False) -> Callable[[F], F]:
        """Decorator: register the function for these `ce_type`s (`batch=True`: it takes a list)."""

        def register(function: F) -> F:
            for event_type in event_types:
                if event_type in self._handlers:
                    raise ConfigurationError(f"projector {self.name!r} has two handlers for {event_type!r}")
                self._handlers[event_type] = Handler(function, batch)
            return function

        return register

    def handler(self, event_type: str) -> Handler | None:
        """The handler of an event type, or None."""
        return self._handlers.get(event_type)

    @property
    def event_types(self) -> frozenset[str]:
        return frozenset(self._handlers)

    @property
    def group_id(self) -> str:
        return self.config.group_id or f"outboxkit-projector-{self.name}"

    def __repr__(self) -> str:
        return f"Projector({self.name!r}, topics={list(self.topics)!r})"


def load_projector(reference: str) -> Projector:
    """Resolve `package.module:attribute` to a Projector; the attribute may also be a function
    without arguments that returns one (handy when topics come from the environment)."""
    return load_reference(reference, Projector, ProjectorNotFoundError)
