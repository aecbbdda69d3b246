"""The payments processor (mode kafka): `order.placed` -> a charge at the provider with the
order's idempotency key -> `payment.charged` or `payment.declined`, in the transaction that moves
past the order. A provider time-out is retried with the same key (no double charge)."""

from __future__ import annotations

from outboxkit.examples.payments.flow import Flow
from outboxkit.examples.payments.provider import DeclinedError, FakePaymentProvider
from outboxkit.processors import Context, Processor, ProcessorConfig, ReceivedEvent


def build_payments(flow: Flow, provider: FakePaymentProvider) -> Processor:
    """Reads `flow.orders`, writes `flow.payments`; retries provider time-outs up to 8 times."""
    config = ProcessorConfig(max_retries=8, retry_backoff=0.01, output_topic=flow.topic_template)
    processor = Processor(flow.name("payments"), [flow.orders], mode="kafka", config=config)

    @processor.handles("order.placed")
    def charge(event: ReceivedEvent, context: Context) -> None:
        order = event.payload
        try:
            made = provider.charge(context.idempotency_key, order["order_id"], order["amount_cents"])
        except DeclinedError as err:
            context.emit("payment.declined", {**order, "reason": str(err)}, aggregate_type="payment")
            return
        context.emit(
            "payment.charged",
            {**order, "charge_id": made.charge_id, "charged_cents": made.amount_cents},
            aggregate_type="payment",
        )

    return processor
