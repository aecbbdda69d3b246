"""A processor moves what is alive at its start out of the cycle collector's reach (gc.freeze): a
full collection over the modules and set-up of a process stopped every thread ~50 ms (~100k
objects), once every few seconds at 1,000 events/s, and that was the processor's latency tail."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator

import pytest

from outboxkit.processors import Processor, ProcessorConfig
from outboxkit.processors.kafka_mode import KafkaProcessorRunner


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def stopped_run(bootstrap: str, topic: str, name: str, **config: bool) -> None:
    processor = Processor(name, [topic], config=ProcessorConfig(**config))  # type: ignore[arg-type]
    stop = threading.Event()
    stop.set()  # the loop ends at once: only its start is looked at
    KafkaProcessorRunner(processor, bootstrap).run(stop)


@pytest.mark.usefixtures("unfrozen")
def test_a_running_processor_has_frozen_the_objects_of_its_start(
    bootstrap_servers: str, new_topic: Callable[..., str], unique: Callable[[str], str]
) -> None:
    alive = [bootstrap_servers]
    assert any(found is alive for found in gc.get_objects())
    stopped_run(bootstrap_servers, new_topic("collector"), unique("collector"))
    assert gc.get_freeze_count() > 1000
    assert not any(found is alive for found in gc.get_objects())  # frozen: never scanned


@pytest.mark.usefixtures("unfrozen")
def test_freezing_is_a_setting(
    bootstrap_servers: str, new_topic: Callable[..., str], unique: Callable[[str], str]
) -> None:
    stopped_run(bootstrap_servers, new_topic("collector"), unique("collector"), freeze_objects=False)
    assert gc.get_freeze_count() == 0
