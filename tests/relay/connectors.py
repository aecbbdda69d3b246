"""The CDC relay in tests: a Debezium connector per test (own name, slot, publication), removed after."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg

from outbox.config import OutboxSettings
from relay.cdc import CdcSettings, connector_config
from relay.connect import ConnectClient
from relay.slot import drop_publication, drop_slot, slot_lag


@dataclass
class CdcConnector:
    """One registered connector streaming `database_url`'s outbox; `remove()` leaves nothing behind."""

    database_url: str
    connect_url: str
    exactly_once: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def settings(self) -> CdcSettings:
        values: dict[str, Any] = {
            "connector_name": f"test-cdc-{self.tag}",
            "slot_name": f"test_cdc_{self.tag}",
            "publication": f"test_cdc_{self.tag}",
            "topic_prefix": f"test-cdc-{self.tag}",
            "exactly_once": self.exactly_once,
            "heartbeat_interval_ms": 1000,
        }
        return CdcSettings(**{**values, **self.overrides})

    def config(self) -> dict[str, str]:
        outbox = OutboxSettings(database_url=self.database_url, connect_url=self.connect_url)
        return connector_config(outbox, self.settings)

    def register(self, timeout: float = 90) -> CdcConnector:
        """Register and wait until the task streams from its slot (events committed later are seen)."""
        with ConnectClient(self.connect_url) as client:
            client.put_config(self.settings.connector_name, self.config())
            client.wait(self.settings.connector_name, timeout=timeout)
        self.wait_slot_active(timeout)
        return self

    def wait_slot_active(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                lag = slot_lag(conn, self.settings.slot_name)
                if lag is not None and lag.active:
                    return
                time.sleep(0.2)
        raise AssertionError(f"slot {self.settings.slot_name} not active after {timeout}s")

    def remove(self) -> None:
        with ConnectClient(self.connect_url) as client:
            client.delete(self.settings.connector_name)
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                lag = slot_lag(conn, self.settings.slot_name)
                if lag is None or not lag.active:
                    break
                time.sleep(0.2)
            drop_slot(conn, self.settings.slot_name)
            drop_publication(conn, self.settings.publication)
