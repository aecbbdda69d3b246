"""A fake payment provider in the repository: it keeps its ledger in its own table, written in its
own transactions (a third party: no transaction of the caller covers it), honours idempotency
keys as real providers do (a second request with a key returns the first charge), and fails
sometimes: before charging (nothing happened), or after charging with the answer lost (the
money moved, the caller does not know: only the key keeps a retry from charging again).
"""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert

from outboxkit.examples.payments.tables import charges

LIMIT_CENTS = 50_000
"""Charges above this are declined (a permanent answer, not a failure)."""


class ProviderUnavailableError(Exception):
    """The provider did not answer (a time-out): try again with the same idempotency key."""


class DeclinedError(Exception):
    """The provider refused the charge for good."""


@dataclass(frozen=True)
class Charge:
    charge_id: str
    amount_cents: int


class FakePaymentProvider:
    """Thread-safe. `failure_rate`: the share of requests that fail (half before, half after charging)."""

    def __init__(self, engine: Engine, *, failure_rate: float = 0.2, seed: int | None = None) -> None:
        self.engine = engine
        self.failure_rate = failure_rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.failures = 0
        """Requests failed so far."""

    def _fails(self) -> bool:
        with self._lock:
            failed = self._random.random() < self.failure_rate / 2
            self.failures += failed
            return failed

    def charge(self, idempotency_key: str, order_id: str, amount_cents: int) -> Charge:
        if self._fails():
            raise ProviderUnavailableError("payment provider timed out before charging")
        if amount_cents > LIMIT_CENTS:
            raise DeclinedError(f"amount {amount_cents} over the limit {LIMIT_CENTS}")
        row = {
            "idempotency_key": idempotency_key,
            "charge_id": f"ch_{uuid.uuid4().hex[:16]}",
            "order_id": order_id,
            "amount_cents": amount_cents,
        }
        with self.engine.begin() as conn:
            conn.execute(insert(charges).on_conflict_do_nothing(index_elements=["idempotency_key"]), row)
            found = conn.execute(charges.select().where(charges.c.idempotency_key == idempotency_key)).one()
        if self._fails():
            raise ProviderUnavailableError("payment provider timed out after charging (the answer was lost)")
        return Charge(found.charge_id, found.amount_cents)
