"""Exactly-once consume-transform-produce processors (docs/processors.md).

- mode `kafka`: outputs and input offsets commit in one Kafka transaction (KIP-447);
- mode `database`: the handler's writes, its outbox events and the input positions commit in one
  PostgreSQL transaction.
"""

from outboxkit.kafka.records import ReceivedEvent
from outboxkit.processors.config import ProcessorConfig
from outboxkit.processors.errors import HandlerFailedError, PermanentError, ProcessorError
from outboxkit.processors.lineage import CAUSATION_ID, CORRELATION_ID, idempotency_key
from outboxkit.processors.processor import Context, Processor, load_processor

__all__ = [
    "CAUSATION_ID",
    "CORRELATION_ID",
    "Context",
    "HandlerFailedError",
    "PermanentError",
    "Processor",
    "ProcessorConfig",
    "ProcessorError",
    "ReceivedEvent",
    "idempotency_key",
    "load_processor",
]
