"""Runnable services that use outboxkit."""
