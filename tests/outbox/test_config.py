"""Settings: documented defaults, OUTBOX_ environment variables, validation at load."""

from __future__ import annotations

import pytest

from outbox import ConfigurationError, Outbox, OutboxSettings, Retention, TopicRouter
from outbox.routing import check_topic


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(OutboxSettings.model_fields):
        monkeypatch.delenv(f"OUTBOX_{name.upper()}", raising=False)
    settings = OutboxSettings.load()
    assert settings.topic_template == "{aggregate_type}"
    assert settings.max_record_bytes == 1_000_000
    assert settings.notify is True
    assert settings.retention is Retention.DELETE
    assert settings.retention_days == 7


def test_environment_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTBOX_SOURCE", "billing")
    monkeypatch.setenv("OUTBOX_TOPIC_TEMPLATE", "billing.{aggregate_type}")
    monkeypatch.setenv("OUTBOX_NOTIFY", "false")
    monkeypatch.setenv("OUTBOX_RETENTION", "keep")
    settings = OutboxSettings.load(retention_days=30)
    assert settings.retention is Retention.KEEP
    assert settings.retention_days == 30
    outbox = Outbox.from_settings(settings)
    assert outbox.source == "billing"
    assert outbox.notify_channel is None
    assert outbox.router.topic("invoice", "invoice.paid") == "billing.invoice"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("topic_template", "{aggregate}"),
        ("topic_template", "{aggregate_type!r}"),
        ("topic_template", "{aggregate_type"),
        ("max_record_bytes", "10"),
        ("notify_channel", "Bad-Channel"),
        ("retention", "forever"),
        ("retention_days", "0"),
        ("source", ""),
        ("database_url", "mysql://x"),
    ],
)
def test_invalid_settings_raise_configuration_error(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"OUTBOX_{name.upper()}", value)
    with pytest.raises(ConfigurationError, match=name):
        OutboxSettings.load()


def test_router_renders_and_checks_topics() -> None:
    router = TopicRouter("{aggregate_type}.{event_type}")
    assert router.topic("order", "placed") == "order.placed"
    assert router.topic("order", "placed", override="special") == "special"
    for bad in ("", ".", "..", "a b", "x" * 250):
        with pytest.raises(ValueError, match="topic name"):
            check_topic(bad)
