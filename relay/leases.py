"""Which shards this relay publishes: PostgreSQL session advisory locks, one per shard.

A lock lives as long as the relay's lease connection. When a relay dies (kill -9 included) its
connection closes, PostgreSQL releases the locks at once, and a standby relay takes the shards over
on its next `rebalance()` (every poll interval): failover within about one poll interval.

Fair share: live relays of a group are counted by the `application_name` of their lease
connections *in this database* (advisory locks are per database, so relays of a same-named group
serving another database of the server are not competitors); a relay holding more than
ceil(shards / live relays) gives the surplus back between batches, when nothing of those shards is
in flight, so a shard changes hands without reordering.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from typing import Any

import psycopg

LOCK_NAMESPACE_SALT = "outboxkit-relay:"
APPLICATION_PREFIX = "outbox-relay:"
NAMEDATALEN = 64
"""PostgreSQL keeps application_name to NAMEDATALEN - 1 bytes and silently cuts the rest."""

# The current database's oid, as pg_locks names it: advisory locks of other databases are others'.
THIS_DATABASE = "(SELECT oid FROM pg_database WHERE datname = current_database())"


def lease_application_name(group: str) -> str:
    """The application_name of a group's lease connections: what relays count each other by.

    A name PostgreSQL would cut (a group may have 100 characters) would never equal the stored one,
    and two long groups with a common prefix would be cut to the same name; such a group is named
    by a readable prefix and a hash of the whole group instead, the same in every relay (`~`
    cannot occur in a group name, so a hashed name never equals a short group's).
    """
    name = APPLICATION_PREFIX + group
    if len(name.encode()) < NAMEDATALEN:
        return name
    digest = hashlib.sha256(group.encode()).hexdigest()[:16]
    keep = NAMEDATALEN - 1 - len(APPLICATION_PREFIX) - len(digest) - 1
    return f"{APPLICATION_PREFIX}{group[:keep]}~{digest}"


class ShardLeases:
    """Owns a subset of `shards` for relay group `group` through `conn` (autocommit, dedicated)."""

    def __init__(
        self, conn: psycopg.Connection[Any], group: str, shards: int, max_per_instance: int = 0
    ) -> None:
        self.conn = conn
        self.group = group
        self.shards = shards
        self.max_per_instance = max_per_instance
        # pg_try_advisory_lock(int4, int4): a group-wide namespace, then the shard number.
        self.namespace = zlib.crc32((LOCK_NAMESPACE_SALT + group).encode()) - 2**31
        self.owned: set[int] = set()

    @property
    def application_name(self) -> str:
        return lease_application_name(self.group)

    def live_instances(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
            " AND datname = current_database()",
            (self.application_name,),
        ).fetchone()
        return max(1, int(row[0]) if row else 1)

    def fair_share(self) -> int:
        if self.max_per_instance:
            return min(self.max_per_instance, self.shards)
        return math.ceil(self.shards / self.live_instances())

    def rebalance(self) -> tuple[set[int], set[int]]:
        """Take free shards up to the fair share, give back the surplus; returns (gained, released)."""
        share = self.fair_share()
        released: set[int] = set()
        while len(self.owned) > share:
            shard = max(self.owned)
            self.conn.execute("SELECT pg_advisory_unlock(%s, %s)", (self.namespace, shard))
            self.owned.discard(shard)
            released.add(shard)
        gained: set[int] = set()
        for shard in range(self.shards):
            if len(self.owned) >= share:
                break
            if shard in self.owned:
                continue
            row = self.conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (self.namespace, shard)).fetchone()
            if row and row[0]:
                self.owned.add(shard)
                gained.add(shard)
        return gained, released

    def release_all(self) -> None:
        for shard in sorted(self.owned):
            self.conn.execute("SELECT pg_advisory_unlock(%s, %s)", (self.namespace, shard))
        self.owned.clear()

    def holders(self) -> dict[int, int]:
        """shard -> pid of the PostgreSQL backend holding it (any relay of the group in this database)."""
        rows = self.conn.execute(
            "SELECT objid, pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            f" AND database = {THIS_DATABASE} AND classid = %s::oid AND objsubid = 2",
            (self.namespace & 0xFFFFFFFF,),
        ).fetchall()
        return {int(objid): int(pid) for objid, pid in rows}
