"""The relay's checks before producing, while Kafka does not answer (a port nobody listens on: a
broker that is down). They must not hold the relay up: producing finds out that Kafka is away, and
the relay reports it and backs off. Each second spent here is a second before /healthz says so."""

from __future__ import annotations

import time

from relay.preflight import BROKER_DEFAULT_MAX_MESSAGE_BYTES, LOOKUP_TIMEOUT, Preflight
from tests.isolated import free_port


def test_an_unreachable_kafka_is_asked_about_a_topic_once_and_its_limit_is_not_kept() -> None:
    preflight = Preflight(f"127.0.0.1:{free_port()}")
    began = time.monotonic()
    verdict = preflight.check_topic("orders")
    took = time.monotonic() - began
    # One metadata request's time-out; the size limit is not asked of a Kafka that just did not
    # answer (that was another 10 s per batch).
    assert took < LOOKUP_TIMEOUT + 2, f"{took:.1f}s"
    assert verdict == min(preflight.producer_max, BROKER_DEFAULT_MAX_MESSAGE_BYTES)
    # A guess, not an answer: asked again once Kafka answers, not kept for the cache's 5 minutes.
    assert "orders" not in preflight.limits
    began = time.monotonic()
    assert preflight.check_topic("orders") == verdict
    assert time.monotonic() - began < 1, "asked again within the unreachable spell"
