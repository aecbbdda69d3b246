"""Settings: documented defaults, OUTBOX_ environment variables, validation at load."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from outbox import ConfigurationError, Outbox, OutboxSettings, Retention, TopicRouter, migrations
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


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://svc:s3cret@db:5432/shop", "postgresql://svc:***@db:5432/shop"),
        ("postgres://svc:s%40cr%2Fet@db/shop", "postgres://svc:***@db/shop"),
        ("postgresql+psycopg://svc:p@ss@db/shop", "postgresql+psycopg://svc:***@db/shop"),
        ("postgresql://svc@db/shop", "postgresql://svc@db/shop"),
        ("postgresql://db:5432/shop", "postgresql://db:5432/shop"),
        ("postgresql://:s3cret@db/shop", "postgresql://:***@db/shop"),
        (
            "postgresql:///shop?host=/run&password=s3cret&sslmode=require",
            "postgresql:///shop?host=/run&password=***&sslmode=require",
        ),
        ("host=db password=s3cret dbname=shop", "host=db password=*** dbname=shop"),
        ("host=db password = 'it\\'s a secret' dbname=shop", "host=db password = *** dbname=shop"),
        ("host=db sslpassword=s3cret", "host=db sslpassword=***"),
        ("http://admin:s3cret@connect:8083", "http://admin:***@connect:8083"),
        ("got 'mysql://u:s3cret@h/db' and 'http://a:b@c'", "got 'mysql://u:***@h/db' and 'http://a:***@c'"),
        ("127.0.0.1:9092,kafka:9092", "127.0.0.1:9092,kafka:9092"),
    ],
)
def test_mask_url_hides_every_password(text: str, masked: str) -> None:
    from outbox.config import mask_url

    assert mask_url(text) == masked


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("postgresql://svc:pw@db/shop", "postgresql://svc:pw@db/shop"),
        ("postgres://svc:pw@db/shop", "postgres://svc:pw@db/shop"),
        ("postgresql+psycopg://svc:pw@db/shop", "postgresql://svc:pw@db/shop"),
        ("postgresql+psycopg2://svc:pw@db/shop", "postgresql://svc:pw@db/shop"),
        ("host=db dbname=shop user=svc", "host=db dbname=shop user=svc"),
    ],
)
def test_database_urls_libpq_takes_are_accepted(given: str, stored: str) -> None:
    """Stored as psycopg connects with it; migrations.sqlalchemy_url() names the driver for SQLAlchemy."""
    settings = OutboxSettings.load(database_url=given)
    assert settings.database_url == stored
    assert migrations.sqlalchemy_url(given).startswith("postgresql+psycopg://")


def test_sqlalchemy_url_keeps_every_part() -> None:
    url = make_url(migrations.sqlalchemy_url("postgres://svc:p%40ss@db:6543/shop?sslmode=require"))
    assert (url.drivername, url.username, url.password, url.host, url.port) == (
        "postgresql+psycopg",
        "svc",
        "p@ss",
        "db",
        6543,
    )
    assert (url.database, dict(url.query)) == ("shop", {"sslmode": "require"})
    url = make_url(migrations.sqlalchemy_url("host=db port=6543 dbname=shop user=svc password=pw"))
    assert url.drivername == "postgresql+psycopg"
    assert dict(url.query) == {
        "host": "db",
        "port": "6543",
        "dbname": "shop",
        "user": "svc",
        "password": "pw",
    }


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mysql://svc:s3cret@db/shop", "PostgreSQL"),
        ("postgresql+asyncpg://svc:s3cret@db/shop", "psycopg"),
        ("postgresql://svc:s3cret@db/shop?nonsense=1", "nonsense"),
        ("", "empty"),
        ("host=db password=s3cret bogus", "libpq"),
    ],
)
def test_a_bad_database_url_is_refused_with_its_password_masked(url: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match="database_url") as caught:
        OutboxSettings.load(database_url=url)
    assert reason in str(caught.value)
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ConfigurationError) as caught:
        migrations.sqlalchemy_url(url)
    assert "s3cret" not in str(caught.value)


def test_settings_errors_name_the_variable_and_hide_secrets() -> None:
    with pytest.raises(ConfigurationError) as caught:
        OutboxSettings.load(retention_days=0, database_url="postgres://svc:s3cret@db/shop", source="")
    message = str(caught.value)
    assert "retention_days (OUTBOX_RETENTION_DAYS): " in message and "got 0" in message
    assert "source (OUTBOX_SOURCE)" in message
    assert "s3cret" not in message and "input_value" not in message
