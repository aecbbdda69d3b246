"""Errors of the processors, all under `outbox.errors.OutboxError`."""

from __future__ import annotations

from outbox.errors import OutboxError


class ProcessorError(OutboxError):
    """A processor cannot go on."""


class PermanentError(Exception):
    """Raised by a handler for an event it can never handle (a declined card, a malformed order):
    the input is dead-lettered at once, without retries, in the commit that moves past it."""


class HandlerFailedError(ProcessorError):
    """A handler kept failing after its retries, and the processor is configured to stop."""


class ProcessorNotFoundError(ProcessorError):
    """A processor reference (`module:attribute`) does not name a processor."""
