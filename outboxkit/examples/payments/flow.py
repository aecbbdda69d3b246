"""The names of one payments flow: its topics and its components' names, from one prefix."""

from __future__ import annotations

from dataclasses import dataclass

from outbox import Outbox, TopicRouter


@dataclass(frozen=True)
class Flow:
    prefix: str = "payments-demo"

    @property
    def topic_template(self) -> str:
        return f"{self.prefix}.{{aggregate_type}}"

    @property
    def orders(self) -> str:
        return f"{self.prefix}.order"

    @property
    def payments(self) -> str:
        return f"{self.prefix}.payment"

    @property
    def stock(self) -> str:
        return f"{self.prefix}.stock"

    @property
    def topics(self) -> tuple[str, ...]:
        return (self.orders, self.payments, self.stock)

    def name(self, component: str) -> str:
        return f"{self.prefix}-{component}"

    def outbox(self, source: str) -> Outbox:
        return Outbox(router=TopicRouter(self.topic_template), source=source)
