"""Names and identifiers are checked whole: a trailing newline (which `re.match(r"^...$")` lets
through, `$` matching before a final newline) or any other stray character is refused everywhere."""

from __future__ import annotations

import re

import pytest
from pydantic_settings import BaseSettings

from outbox import ConfigurationError, Event, InvalidEventError, InvalidHeaderError, Outbox, OutboxSettings
from outbox.routing import TopicRouter, check_topic
from outbox.validation import checked_headers
from projectors.config import ProjectorConfig
from projectors.projector import Projector
from relay.cdc import CdcSettings
from relay.settings import RelaySettings, load_settings

SETTINGS: list[type[BaseSettings]] = [OutboxSettings, RelaySettings, CdcSettings]


def pattern_fields() -> list[tuple[type[BaseSettings], str, str]]:
    """(settings class, field, pattern) of every field validated by a regular expression."""
    found = []
    for cls in SETTINGS:
        for name, info in cls.model_fields.items():
            for rule in info.metadata:
                pattern = getattr(rule, "pattern", None)
                if pattern is not None:
                    found.append((cls, name, pattern))
    return found


def test_the_settings_have_pattern_fields() -> None:
    names = {name for _, name, _ in pattern_fields()}
    assert {"notify_channel", "group", "slot_name", "connector_name"} <= names


@pytest.mark.parametrize(
    ("cls", "name", "pattern"), pattern_fields(), ids=[f"{c.__name__}.{n}" for c, n, _ in pattern_fields()]
)
@pytest.mark.parametrize("suffix", ["\n", "\r\n", " ", "\x00"])
def test_pattern_fields_refuse_a_trailing_newline(
    cls: type[BaseSettings], name: str, pattern: str, suffix: str
) -> None:
    """pydantic 2 checks `pattern=` with Rust regex semantics (`$` is the end of the text); this test
    holds that true for every field, whatever engine a later version picks."""
    default = cls.model_fields[name].default or "name"  # a field without a default: a sample
    assert re.fullmatch(pattern, default)
    cls(**{name: default})  # the default is fine: the suffix is what is refused
    with pytest.raises(ValueError, match=name):
        cls(**{name: default + suffix})


@pytest.mark.parametrize("topic", ["orders\n", "orders\r\n", "\norders", "x" * 249 + "\n"])
def test_a_topic_with_a_newline_is_refused(topic: str) -> None:
    with pytest.raises(InvalidEventError, match="topic name"):
        check_topic(topic)
    with pytest.raises(InvalidEventError, match="topic name"):
        Outbox().prepare(Event(type="t", aggregate_type="a", aggregate_id="1", payload={}, topic=topic))


def test_a_rendered_topic_with_a_newline_is_refused() -> None:
    with pytest.raises(InvalidEventError, match="topic name"):
        TopicRouter("{aggregate_type}").topic("order\n", "order.placed")


def test_a_header_name_with_a_newline_is_refused() -> None:
    with pytest.raises(InvalidHeaderError, match="header name"):
        checked_headers({"tenant\n": "x"})


def test_a_projector_name_with_a_newline_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="projector name"):
        Projector("sites\n", ["t"])


@pytest.mark.parametrize("topic", ["", "bad topic", "..", "t\n", "x" * 250])
def test_a_projector_topic_kafka_refuses_is_refused(topic: str) -> None:
    with pytest.raises(ConfigurationError, match="topic"):
        Projector("sites", [topic])


@pytest.mark.parametrize("template", ["{topic}.dlq\n", "dlq/{topic}", "{topic} dlq"])
def test_a_dead_letter_topic_template_kafka_refuses_is_refused(template: str) -> None:
    with pytest.raises(ConfigurationError, match="dead_letter_topic"):
        ProjectorConfig(dead_letter_topic=template)


@pytest.mark.parametrize("topic", ["", "bad topic", "..", "progress\n", "x" * 250])
def test_a_relay_progress_topic_kafka_refuses_is_refused(topic: str) -> None:
    with pytest.raises(ConfigurationError, match="progress_topic"):
        load_settings(None, relay_progress_topic=topic)
