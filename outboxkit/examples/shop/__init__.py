"""A small shop: orders are aggregates that record their events through the outbox mixin."""
