"""The cycle collector: `outbox processor run` freezes what is alive when its loop starts
(gc.freeze; outboxkit.ops.collector), since a full collection over the modules and set-up of the
process stopped every thread 50-170 ms about every 10 s at 1,000 events/s, the processor's fixed
latency tail. Process-wide, so only the daemon does it: an embedded runner leaves its host alone."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from pathlib import Path

from outboxkit.processors import Processor
from outboxkit.processors.kafka_mode import KafkaProcessorRunner
from tests.daemon_collector import collector_of_daemon
from tests.isolated import free_port

REPO = Path(__file__).resolve().parents[2]


def test_an_embedded_processor_leaves_the_host_collector_alone(
    bootstrap_servers: str, new_topic: Callable[..., str], unique: Callable[[str], str]
) -> None:
    frozen = gc.get_freeze_count()
    stop = threading.Event()
    stop.set()  # the loop ends at once: its start is what is looked at
    KafkaProcessorRunner(Processor(unique("embedded"), [new_topic("collector")]), bootstrap_servers).run(stop)
    assert gc.get_freeze_count() == frozen


def test_the_processor_daemon_freezes_the_objects_of_its_start(
    bootstrap_servers: str, new_topic: Callable[..., str], unique: Callable[[str], str]
) -> None:
    port = free_port()
    env = {
        "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        "PROCESSOR_NAME": unique("daemon-gc"),
        "PROCESSOR_TOPIC": new_topic("collector"),
        "PROCESSOR_OUTPUT": "unused",
        "PROCESSOR_DLQ": "unused-dlq",
    }
    command = ["processor", "run", "tests.processors.target:from_environment", "--metrics-port", str(port)]
    state = collector_of_daemon([*command, "--log-level", "WARNING"], port, env)
    assert state["frozen"] > 1000, "the daemon's start-up objects were not frozen out of the collector"
