"""The example's own tables (the services' domains; the toolkit's tables come from Alembic)."""

from __future__ import annotations

import sqlalchemy as sa

from projectors.versioning import version_columns

metadata = sa.MetaData()

orders = sa.Table(
    "payments_demo_orders",
    metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("sku", sa.Text, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
)
"""Checkout's orders."""

charges = sa.Table(
    "payments_demo_provider_charges",
    metadata,
    sa.Column("idempotency_key", sa.Text, primary_key=True),
    sa.Column("charge_id", sa.Text, nullable=False, unique=True),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
)
"""The payment provider's ledger: one row per charge it made (the money that moved)."""

stock = sa.Table(
    "payments_demo_stock",
    metadata,
    sa.Column("sku", sa.Text, primary_key=True),
    sa.Column("available", sa.Integer, nullable=False),
    sa.CheckConstraint("available >= 0", name="payments_demo_stock_not_negative"),
)
"""Inventory's stock per SKU."""

reservations = sa.Table(
    "payments_demo_reservations",
    metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("sku", sa.Text, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
)
"""Inventory's reservations: one per paid order."""

payment_status = sa.Table(
    "payments_demo_order_payment",
    metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    *version_columns(),
)
"""The order-status projection, from the payments topic: paid or declined (versioned by its offsets)."""

stock_status = sa.Table(
    "payments_demo_order_stock",
    metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, nullable=False),
    *version_columns(),
)
"""The order-status projection, from the stock topic: reserved or out of stock. One table per
topic: a row's version is an offset of one partition, never compared across topics."""
