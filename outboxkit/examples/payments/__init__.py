"""The payments example (docs/processors.md): checkout writes orders through the outbox; the
payments processor (mode kafka) charges them at a fake payment provider with each order's
idempotency key; the inventory processor (mode database) reserves stock; a projector keeps
each order's status. Money and stock totals balance, whatever fails on the way."""
