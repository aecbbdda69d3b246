"""Consumer runtime: projections into read models with the Kafka offset as row version.

Declare a `Projector`, register a handler per event type, run it with `ProjectorRunner` (or
`outbox projector run`), rebuild its read model with `rebuild`, watch it with `projector_status`.
"""

from outboxkit.kafka.records import ReceivedEvent, decode
from projectors.config import ProjectorConfig
from projectors.errors import (
    DeadLetterError,
    HandlerFailedError,
    OffsetBeyondLogEndError,
    PartitionCountChangedError,
    ProjectorError,
    ProjectorNotFoundError,
    RebuildError,
    UndecodableRecordError,
)
from projectors.metrics import ProjectorMetrics
from projectors.projector import Projector, load_projector
from projectors.rebuild import rebuild
from projectors.runtime import ProjectorRunner
from projectors.status import PartitionStatus, projector_status
from projectors.tracking import OffsetStore
from projectors.versioning import (
    ROW_VERSION,
    RowVersion,
    newer_than_row,
    version_columns,
    version_of,
    versioned_upsert,
    versioned_upsert_many,
)

__all__ = [
    "ROW_VERSION",
    "DeadLetterError",
    "HandlerFailedError",
    "OffsetBeyondLogEndError",
    "OffsetStore",
    "PartitionCountChangedError",
    "PartitionStatus",
    "Projector",
    "ProjectorConfig",
    "ProjectorError",
    "ProjectorMetrics",
    "ProjectorNotFoundError",
    "ProjectorRunner",
    "RebuildError",
    "ReceivedEvent",
    "RowVersion",
    "UndecodableRecordError",
    "decode",
    "load_projector",
    "newer_than_row",
    "projector_status",
    "rebuild",
    "version_columns",
    "version_of",
    "versioned_upsert",
    "versioned_upsert_many",
]
