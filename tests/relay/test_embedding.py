"""The relay as a library inside a service, and as the `outbox relay run` daemon: process-wide
tuning (the garbage collector) belongs to the daemon's entry point, not to the library."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

from outbox import OutboxSettings
from outboxkit.cli.relay import GC_THRESHOLD
from relay.polling import PollingRelay
from relay.settings import RelaySettings
from tests.daemon_collector import collector_of_daemon
from tests.isolated import free_port
from tests.relay.conftest import outbox_count
from tests.relay.events import engine_for, outbox_for, write_numbered


def test_an_embedded_relay_leaves_the_host_process_garbage_collector_alone(
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
    unique: Callable[[str], str],
) -> None:
    topic = new_topic("embedded")
    write_numbered(engine_for(clean_outbox), outbox_for(topic), ["a", "b"], 5)
    relay = PollingRelay(
        OutboxSettings(database_url=clean_outbox, kafka_bootstrap_servers=bootstrap_servers),
        RelaySettings(group=unique("embedded"), metrics_port=0, poll_interval=0.1),
    )
    host_threshold = (1234, 5, 6)  # the host service's own choice, unlike anyone's default
    saved = gc.get_threshold()
    gc.set_threshold(*host_threshold)
    frozen = gc.get_freeze_count()
    seen: list[tuple[tuple[int, int, int], int]] = []
    deadline = time.monotonic() + 30

    def after_turn() -> None:
        seen.append((gc.get_threshold(), gc.get_freeze_count()))
        if outbox_count(clean_outbox) == 0 or time.monotonic() > deadline:
            relay.stop()

    try:
        relay.run(on_turn=after_turn)
    finally:
        gc.set_threshold(*saved)
    assert outbox_count(clean_outbox) == 0, "the relay did not drain the outbox within 30 s"
    assert seen and set(seen) == {(host_threshold, frozen)}, "the relay changed the host's GC"


def test_the_relay_daemon_tunes_the_garbage_collector_of_its_own_process(
    clean_outbox: str, bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    port = free_port()
    env = {
        "OUTBOX_DATABASE_URL": clean_outbox,
        "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        "OUTBOX_RELAY_GROUP": unique("daemon-gc"),
        "OUTBOX_RELAY_METRICS_PORT": str(port),
    }
    state = collector_of_daemon(["relay", "run", "--log-level", "WARNING"], port, env)
    assert tuple(state["threshold"]) == GC_THRESHOLD
    assert state["frozen"] > 0, "the daemon's long-lived objects were not frozen out of the GC"
