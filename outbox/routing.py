"""Which Kafka topic an event goes to: one rule, shared by the publisher and both relays."""

from __future__ import annotations

import re
from dataclasses import dataclass
from string import Formatter

from outbox.errors import ConfigurationError, InvalidEventError

PLACEHOLDERS = frozenset({"aggregate_type", "event_type"})
# fullmatch, never match with `$`: `$` also matches before a final newline, and Kafka refuses "t\n".
_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def topic_problem(topic: object) -> str | None:
    """Why Kafka would refuse `topic` as a topic name, or None when it accepts it."""
    if isinstance(topic, str) and _TOPIC.fullmatch(topic) and topic not in (".", ".."):
        return None
    return (
        f"{topic!r} is not a valid Kafka topic name: use 1-249 characters of [a-zA-Z0-9._-], "
        "other than '.' and '..'"
    )


_passed_topics: set[str] = set()
"""Topic names check_topic() accepted (a few per service; bounded all the same)."""


def check_topic(topic: object) -> str:
    """Return `topic` if Kafka accepts it as a topic name, else raise InvalidEventError."""
    if type(topic) is str and topic in _passed_topics:
        return topic
    problem = topic_problem(topic)
    if problem is not None:
        raise InvalidEventError(
            f"{problem} (check the aggregate type, the topic template or the event's topic)"
        )
    assert isinstance(topic, str)  # topic_problem() said so
    if len(_passed_topics) < 1024:
        _passed_topics.add(topic)
    return topic


@dataclass(frozen=True)
class TopicRouter:
    """Renders a topic from a template such as `"{aggregate_type}"` or `"shop.{aggregate_type}.v1"`."""

    template: str = "{aggregate_type}"

    def __post_init__(self) -> None:
        try:
            parsed = [(name, spec, conv) for _, name, spec, conv in Formatter().parse(self.template)]
        except ValueError as err:
            raise ConfigurationError(f"topic template {self.template!r}: {err}") from err
        names = {name for name, _, _ in parsed if name is not None}
        specs = [spec or conv for name, spec, conv in parsed if name is not None]
        if names - PLACEHOLDERS or any(specs):
            raise ConfigurationError(
                f"topic template {self.template!r} may only use the plain placeholders "
                f"{sorted(PLACEHOLDERS)}, e.g. 'shop.{{aggregate_type}}'"
            )

    def topic(self, aggregate_type: str, event_type: str, override: object = None) -> str:
        """The event's topic: `override` when given, else the rendered template; always checked."""
        if override is not None:
            return check_topic(override)
        return check_topic(self.template.format(aggregate_type=aggregate_type, event_type=event_type))
