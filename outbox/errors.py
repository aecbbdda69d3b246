"""The one exception hierarchy of outboxkit. Messages say what was wrong and what to do."""


class OutboxError(Exception):
    """Root of every error outboxkit raises on purpose."""


class ConfigurationError(OutboxError):
    """A setting is missing or invalid."""
