"""KafkaSettings: one model of how every client reaches and logs in to the cluster (pure logic)."""

from __future__ import annotations

import pytest

from outbox.errors import ConfigurationError
from outboxkit.kafka import clients
from outboxkit.kafka.settings import KafkaSettings

LOGIN = {
    "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": "k1:9094,k2:9094",
    "OUTBOX_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
    "OUTBOX_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "OUTBOX_KAFKA_SASL_USERNAME": "svc",
    "OUTBOX_KAFKA_SASL_PASSWORD": "s3cret",
    "OUTBOX_KAFKA_SSL_CA_LOCATION": "ca.pem",
    "OUTBOX_KAFKA_CONNECTION": '{"socket.keepalive.enable": "true"}',
}


def test_the_environment_names_the_cluster_and_its_login(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in LOGIN.items():
        monkeypatch.setenv(name, value)
    config = KafkaSettings.load().client_config()
    assert config == {
        "bootstrap.servers": "k1:9094,k2:9094",
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": "s3cret",
        "ssl.ca.location": "ca.pem",
        "socket.keepalive.enable": "true",
    }


def test_every_client_kind_starts_from_the_same_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in LOGIN.items():
        monkeypatch.setenv(name, value)
    kafka = KafkaSettings.load()
    login = kafka.client_config()
    producer = clients.producer_config(kafka, {"linger.ms": 5})
    consumer = clients.consumer_config(kafka, "g", {"fetch.min.bytes": 10})
    for config in (producer, consumer):
        assert {k: config[k] for k in login} == login
    assert producer["enable.idempotence"] is True and producer["partitioner"] == "murmur2_random"
    assert consumer["isolation.level"] == "read_committed" and consumer["enable.auto.commit"] is False


def test_secrets_are_never_described(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in LOGIN.items():
        monkeypatch.setenv(name, value)
    kafka = KafkaSettings.load()
    shown = f"{kafka.describe()} {kafka!r} {kafka}"
    assert "s3cret" not in shown
    assert "sasl.password=***" in kafka.describe() and "sasl.username=svc" in kafka.describe()


def test_producer_settings_are_refused_as_connection_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTBOX_KAFKA_CONNECTION", '{"acks": "1", "sasl.username": "u"}')
    with pytest.raises(ConfigurationError, match=r"OUTBOX_KAFKA_CONNECTION.*\['acks'\] are not connection"):
        KafkaSettings.load()


def test_a_bad_protocol_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTBOX_KAFKA_SECURITY_PROTOCOL", "tls")
    with pytest.raises(ConfigurationError, match="OUTBOX_KAFKA_SECURITY_PROTOCOL"):
        KafkaSettings.load()


def test_brokers_given_as_text_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTBOX_KAFKA_SASL_USERNAME", "not-for-plain-text")
    assert KafkaSettings.of("k:9092").client_config() == {"bootstrap.servers": "k:9092"}


def test_a_components_connection_settings_join_the_shared_ones() -> None:
    kafka = KafkaSettings.of("k:9092").with_connection({"sasl.username": "u", "linger.ms": "5"})
    assert kafka.client_config() == {"bootstrap.servers": "k:9092", "sasl.username": "u"}
