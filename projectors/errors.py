"""Errors of the projector runtime, all under `outbox.errors.OutboxError`."""

from __future__ import annotations

from outbox.errors import OutboxError
from outboxkit.kafka.errors import DeadLetterError, UndecodableRecordError

__all__ = [
    "DeadLetterError",
    "HandlerFailedError",
    "OffsetBeyondLogEndError",
    "PartitionCountChangedError",
    "ProjectorError",
    "ProjectorNotFoundError",
    "RebuildError",
    "UndecodableRecordError",
]


class ProjectorError(OutboxError):
    """A projector cannot go on."""


class HandlerFailedError(ProjectorError):
    """A handler kept failing after its retries, and the projector is configured to stop."""


class PartitionCountChangedError(ProjectorError):
    """A topic's partition count differs from the one the projector's offsets were stored with."""


class OffsetBeyondLogEndError(ProjectorError):
    """A stored offset lies beyond its partition's end: the topic was recreated or truncated since."""


class ProjectorNotFoundError(ProjectorError):
    """A projector reference (`module:attribute`) does not name a projector."""


class RebuildError(ProjectorError):
    """A rebuild cannot start or cannot swap its tables in."""
