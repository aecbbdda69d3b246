"""The runner of a processor's mode, with what it needs for its lifetime (mode database: an engine)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

from outbox.config import OutboxSettings
from outboxkit.kafka.settings import KafkaSettings
from outboxkit.processors.metrics import ProcessorMetrics
from outboxkit.processors.processor import Processor

if TYPE_CHECKING:
    import threading

    from outboxkit.ops.health import Heartbeat


class Runner(Protocol):
    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set; raises an OutboxError when the processor cannot go on."""


@contextmanager
def runner_for(
    processor: Processor,
    settings: OutboxSettings,
    kafka: KafkaSettings,
    *,
    metrics: ProcessorMetrics | None = None,
    health: Heartbeat | None = None,
) -> Iterator[Runner]:
    if processor.mode == "kafka":
        from outboxkit.processors.kafka_mode import KafkaProcessorRunner

        yield KafkaProcessorRunner(processor, kafka, metrics=metrics, health=health)
        return
    from outboxkit.processors.database_mode import DatabaseProcessorRunner, engine_for

    engine = engine_for(settings.database_url)
    try:
        yield DatabaseProcessorRunner(
            processor, engine, kafka, outbox_settings=settings, metrics=metrics, health=health
        )
    finally:
        engine.dispose()
