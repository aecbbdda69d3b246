"""Which outbox a relay publishes: the PostgreSQL cluster, database and table, as one identity.

Several services may share one Kafka cluster. Everything a relay keeps in Kafka (transactional ids,
progress records) is named by its group, so two services' relays must never share a group: a
transactional relay that took another database's last batch for its own would mark its own rows of
the same ids as published, losing them. Hence:
- the default group is derived from this identity, so two databases get two groups;
- every progress record carries the identity, and a relay refuses a record of another outbox.

Shard leases are taken on the table itself (OutboxTable: schema and name, in the database the
advisory locks belong to), so one table is published by one group whatever the groups are called.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from outbox.errors import MigrationError
from outbox.schema import RUN_MIGRATIONS, TABLE


@dataclass(frozen=True)
class SourceIdentity:
    system: str
    """pg_control_system().system_identifier: unique per PostgreSQL cluster (initdb)."""
    database: str
    table: str

    @classmethod
    def of(cls, conn: psycopg.Connection[Any]) -> SourceIdentity:
        row = conn.execute(
            "SELECT system_identifier::text, current_database() FROM pg_control_system()"
        ).fetchone()
        assert row is not None
        return cls(system=row[0], database=row[1], table=TABLE)

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def describe(self) -> str:
        return f"table {self.table} of database {self.database!r} (PostgreSQL system {self.system})"


@dataclass(frozen=True)
class OutboxTable:
    """The outbox table a connection's search_path finds, as the relays' shard leases name it."""

    database: str
    schema: str
    name: str

    @classmethod
    def of(cls, conn: psycopg.Connection[Any]) -> OutboxTable:
        row = conn.execute(
            "SELECT current_database(), n.nspname, c.relname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
            (TABLE,),
        ).fetchone()
        if row is None:
            raise MigrationError(
                f"table {TABLE} is not in the search_path of this database: {RUN_MIGRATIONS}"
            )
        return cls(database=row[0], schema=row[1], name=row[2])

    @property
    def qualified(self) -> str:
        """`schema.name`: what the lock keys are made of (advisory locks are per database already)."""
        return f"{self.schema}.{self.name}"

    def describe(self) -> str:
        return f"table {self.qualified} of database {self.database!r}"


def default_group(identity: SourceIdentity) -> str:
    """`outbox-<database>-<8 hex>`: readable, and distinct for each cluster, database and table."""
    digest = hashlib.sha256(f"{identity.system}/{identity.database}/{identity.table}".encode()).hexdigest()
    name = re.sub(r"[^A-Za-z0-9.-]+", "-", identity.database).strip("-.")[:40] or "db"
    return f"outbox-{name}-{digest[:8]}"
