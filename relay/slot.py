"""The CDC relay's replication slot: how much WAL it retains, as numbers and Prometheus metrics.

A slot keeps every WAL segment from its `restart_lsn` on until the connector confirms it: a stopped
or failing connector makes PostgreSQL's disk fill up. `retained` is what the slot pins on disk,
`unconfirmed` what the connector has not yet confirmed as delivered to Kafka.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Gauge, generate_latest

SLOT_QUERY = (
    "SELECT active,"
    " pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint,"
    " pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint"
    " FROM pg_replication_slots WHERE slot_name = %(slot)s"
)


@dataclass(frozen=True)
class SlotLag:
    slot: str
    active: bool
    retained_bytes: int
    """WAL held back by the slot: pg_current_wal_lsn() - restart_lsn."""
    unconfirmed_bytes: int
    """WAL not yet confirmed by the connector: pg_current_wal_lsn() - confirmed_flush_lsn."""


def slot_lag(conn: psycopg.Connection[Any], slot: str) -> SlotLag | None:
    """The slot's lag, or None when the slot does not exist (connector never started, or removed)."""
    row = conn.execute(SLOT_QUERY, {"slot": slot}).fetchone()
    if row is None:
        return None
    return SlotLag(slot, bool(row[0]), int(row[1] or 0), int(row[2] or 0))


def drop_slot(conn: psycopg.Connection[Any], slot: str) -> bool:
    """Drop an inactive slot (frees its WAL); False when there was none."""
    row = conn.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %(slot)s",
        {"slot": slot},
    ).fetchone()
    return row is not None


def drop_publication(conn: psycopg.Connection[Any], publication: str) -> None:
    conn.execute(f'DROP PUBLICATION IF EXISTS "{publication}"')


class SlotMetrics:
    """Gauges of one slot in their own registry (no global state): scrape with `exposition()`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.retained = Gauge(
            "outbox_cdc_slot_retained_wal_bytes",
            "WAL the CDC relay's replication slot retains (current LSN - restart_lsn)",
            ["slot"],
            registry=self.registry,
        )
        self.unconfirmed = Gauge(
            "outbox_cdc_slot_unconfirmed_wal_bytes",
            "WAL the connector has not confirmed (current LSN - confirmed_flush_lsn)",
            ["slot"],
            registry=self.registry,
        )
        self.active = Gauge(
            "outbox_cdc_slot_active",
            "1 while a connector streams from the slot",
            ["slot"],
            registry=self.registry,
        )
        self.running = Gauge(
            "outbox_cdc_connector_running",
            "1 when the connector and all its tasks are RUNNING",
            ["connector"],
            registry=self.registry,
        )

    def update(self, lag: SlotLag | None, slot: str, connector: str, running: bool) -> None:
        self.retained.labels(slot).set(lag.retained_bytes if lag else 0)
        self.unconfirmed.labels(slot).set(lag.unconfirmed_bytes if lag else 0)
        self.active.labels(slot).set(1 if lag and lag.active else 0)
        self.running.labels(connector).set(1 if running else 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def drop_slot_when_released(conn: psycopg.Connection[Any], slot: str, timeout: float = 30.0) -> bool:
    """Drop `slot` once no connector holds it (a task lets go a moment after its connector is
    removed); False if there was no such slot."""
    deadline = time.monotonic() + timeout
    while True:
        lag = slot_lag(conn, slot)
        if lag is None:
            return False
        if not lag.active or time.monotonic() > deadline:
            return drop_slot(conn, slot)
        time.sleep(0.25)
