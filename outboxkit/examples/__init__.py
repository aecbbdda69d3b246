"""Runnable services that use outboxkit (the README's demo runs them)."""
