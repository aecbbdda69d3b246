"""Helpers of stack/stack: one module per part of the local stack (standard library only)."""
