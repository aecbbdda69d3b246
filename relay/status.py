"""Where the relays stand: the status sources of the polling relay and of the CDC relay.

`outbox relay status`, `outbox cdc status`, the relay daemon's /status.json and the operator
console read these (outboxkit.ops.status.StatusSource): one query each, in one place.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from outbox.urls import postgres_problem
from outboxkit.ops.status import JSON, StatusUnavailableError
from relay import sql
from relay.connect import ConnectClient, ConnectorState
from relay.identity import SourceIdentity, default_group
from relay.lease_names import instances_of
from relay.leases import ShardLeases
from relay.slot import SlotLag, slot_lag

CONNECT_TIMEOUT = 5
"""Seconds a status read waits for PostgreSQL to accept the connection."""


@dataclass(frozen=True)
class ShardOwner:
    shard: int
    pid: int
    """The PostgreSQL backend holding the shard's lock (the owning relay's lease connection)."""
    instance: str | None
    """The owning relay's instance (`host-pid`, as its logs and /healthz name it; cut when its
    group's name is long); None for a relay of an earlier version."""


@dataclass(frozen=True)
class RelayGroup:
    name: str
    pids: tuple[int, ...]
    """The PostgreSQL backends of its relays' lease connections."""
    instances: tuple[str | None, ...]
    """Its relays' instances, in the order of `pids`."""


@dataclass(frozen=True)
class RelayStatus:
    """The polling relay's outbox and shards, as `outbox relay status` prints them."""

    backlog: int
    """Unpublished events (exact up to 10,000, above that an upper bound: relay/sql.py backlog)."""
    oldest_unpublished_seconds: float
    """Age of the oldest unpublished event; 0 when there is none (the relay's lag)."""
    quarantined: int
    """Events waiting in quarantine (`outbox relay quarantine list`)."""
    group: str
    """The relay group whose shards are shown (configured, or derived from the outbox)."""
    shards: int
    """The shard count the status was asked for."""
    owners: tuple[ShardOwner, ...]
    """Shards some relay holds, by shard (the shards are the table's, whichever group publishes
    it); a shard missing here is published by none."""
    table: str
    """The outbox table the shards belong to, e.g. `table public.outbox_events of database 'shop'`."""
    groups: tuple[RelayGroup, ...]
    """Relay groups live on the table (one publishes it; a relay of another one waits, refused)."""
    other_groups: tuple[str, ...]
    """Live groups other than `group`: while one publishes the table, relays of `group` take no shard."""

    def to_json(self) -> dict[str, JSON]:
        return {
            **asdict(self),
            "owners": [asdict(owner) for owner in self.owners],
            "groups": [
                {"name": g.name, "pids": list(g.pids), "instances": list(g.instances)} for g in self.groups
            ],
            "other_groups": list(self.other_groups),
        }


def read_relay_status(conn: psycopg.Connection[Any], group: str | None, shards: int) -> RelayStatus:
    """The status on the caller's connection (autocommit); `group` None: the outbox's default."""
    row = conn.execute(*sql.backlog()).fetchone()
    assert row is not None
    backlog, oldest, quarantined = int(row[0]), float(row[1] or 0), int(row[2])
    group = group or default_group(SourceIdentity.of(conn))
    leases = ShardLeases(conn, group, shards)
    holders, groups, others = leases.holders(), leases.groups(), leases.other_groups()
    names = instances_of(conn, [*holders.values(), *(pid for pids in groups.values() for pid in pids)])
    return RelayStatus(
        backlog,
        oldest,
        quarantined,
        group,
        shards,
        owners=tuple(ShardOwner(shard, pid, names[pid]) for shard, pid in sorted(holders.items())),
        table=leases.table.describe(),
        groups=tuple(
            RelayGroup(name, tuple(pids), tuple(names[pid] for pid in pids)) for name, pids in groups.items()
        ),
        other_groups=tuple(others),
    )


@contextmanager
def _database(url: str) -> Iterator[psycopg.Connection[Any]]:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
            yield conn
    except psycopg.Error as err:
        raise StatusUnavailableError(postgres_problem(url, err)) from err


class RelayStatusSource:
    """The polling relay's StatusSource: one short connection per read."""

    def __init__(self, database_url: str, group: str | None, shards: int) -> None:
        self.database_url = database_url
        self.group = group
        self.shards = shards

    def read(self) -> RelayStatus:
        """StatusUnavailableError (message masked) when PostgreSQL cannot answer."""
        with _database(self.database_url) as conn:
            return read_relay_status(conn, self.group, self.shards)

    def snapshot(self) -> Mapping[str, JSON]:
        return self.read().to_json()


@dataclass(frozen=True)
class CdcStatus:
    """The CDC relay's connector in Kafka Connect and its replication slot."""

    connector_name: str
    slot_name: str
    connector: ConnectorState | None
    """None: no connector of that name is registered."""
    slot: SlotLag | None
    """None: the slot does not exist (the connector never started, or was removed)."""

    def to_json(self) -> dict[str, JSON]:
        state = self.connector
        return {
            "connector_name": self.connector_name,
            "slot_name": self.slot_name,
            "connector": None
            if state is None
            else {
                "state": state.connector,
                "running": state.running,
                "failed": state.failed,
                "tasks": [{"id": i, "state": s, "trace": t} for i, s, t in state.tasks],
            },
            "slot": None if self.slot is None else asdict(self.slot),
        }


class CdcStatusSource:
    """The CDC relay's StatusSource: asks Kafka Connect first (a ConnectError when it cannot be
    reached, before the database is touched), then PostgreSQL for the slot."""

    def __init__(self, connect_url: str, database_url: str, connector_name: str, slot_name: str) -> None:
        self.connect_url = connect_url
        self.database_url = database_url
        self.connector_name = connector_name
        self.slot_name = slot_name

    def read(self) -> CdcStatus:
        with ConnectClient(self.connect_url) as client:
            state = client.status(self.connector_name)
        with _database(self.database_url) as conn:
            lag = slot_lag(conn, self.slot_name)
        return CdcStatus(self.connector_name, self.slot_name, state, lag)

    def snapshot(self) -> Mapping[str, JSON]:
        return self.read().to_json()
