"""Errors of the KV store (all under outbox.errors.OutboxError)."""

from outbox.errors import OutboxError


class InvalidKeyError(OutboxError, ValueError):
    """A KV key is not non-empty text: keys are str, sent as UTF-8 (a compacted topic needs one)."""


class KVWriteError(OutboxError):
    """Kafka did not take a write (the message says which key and why); nothing was half-applied
    inside a transactional writer's transaction, which was aborted."""


class WriterFencedError(KVWriteError):
    """Another writer with the same transactional.id started: this one is fenced and can write no
    more (the single-writer guarantee). Stop it; the newer writer owns the store."""


class NotReadyError(OutboxError, TimeoutError):
    """The reader has not loaded its topic (or not applied a version) within the time asked."""


class ReaderFailedError(OutboxError):
    """The reader's background thread stopped on an error (chained); it serves what it had."""
