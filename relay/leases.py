"""Which shards this relay publishes: PostgreSQL session advisory locks, one per shard.

A lock lives as long as the relay's lease connection. When a relay dies (kill -9 included) its
connection closes, PostgreSQL releases the locks at once, and a standby relay takes the shards over
on its next `rebalance()` (every poll interval): failover within about one poll interval.

Fair share: the live relays of a group are those that announced the group's shard count (below)
*in this database* (advisory locks are per database, so relays of a same-named group serving
another database of the server are not competitors, and a relay refused for another count takes
nothing, so it must not shrink anyone's share); a relay holding more than ceil(shards / live
relays) gives the surplus back between batches, when nothing of those shards is in flight, so a
shard changes hands without reordering.

One shard count per group: shard 1 of 4 and shard 1 of 8 are different aggregates under the same
lock, so relays that split the outbox differently would publish one aggregate at once. Each relay
announces its count with a shared advisory lock (count namespace, shards) on its lease connection,
*then* looks for live announcements of another count, and takes shards only when there are none;
once agreed it keeps its announcement for the connection's life. Of two relays with different
counts, whichever looks second sees the other's announcement, even when both start at the same
moment, so no two counts ever own shards together. A refused relay withdraws its announcement and
asks again on its next rebalance: relays already publishing go on, and during a rolling change of
the count the new relays take over by themselves once the last old one has stopped.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from typing import Any

import psycopg

from relay.errors import ShardCountMismatchError

LOCK_NAMESPACE_SALT = "outboxkit-relay:"
COUNT_NAMESPACE_SALT = "outboxkit-relay-shards:"
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
        self.namespace = _namespace(LOCK_NAMESPACE_SALT + group)
        # pg_advisory_lock_shared(int4, int4): the group's shard-count namespace, then the count.
        self.count_namespace = _namespace(COUNT_NAMESPACE_SALT + group)
        self.agreed = False
        self.owned: set[int] = set()

    @property
    def application_name(self) -> str:
        return lease_application_name(self.group)

    def live_instances(self) -> int:
        """Relays of the group in this database that agreed on this shard count (this one included)."""
        row = self.conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            f" AND database = {THIS_DATABASE} AND classid = %s::oid AND objid = %s::oid AND objsubid = 2",
            (self.count_namespace & 0xFFFFFFFF, self.shards),
        ).fetchone()
        return max(1, int(row[0]) if row else 1)

    def fair_share(self) -> int:
        if self.max_per_instance:
            return min(self.max_per_instance, self.shards)
        return math.ceil(self.shards / self.live_instances())

    def rebalance(self) -> tuple[set[int], set[int]]:
        """Take free shards up to the fair share, give back the surplus; returns (gained, released).

        Raises ShardCountMismatchError, owning nothing, while a relay with another count is live.
        """
        self._agree_on_shard_count()
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

    def _agree_on_shard_count(self) -> None:
        if self.agreed:
            return
        key = (self.count_namespace, self.shards)
        self.conn.execute("SELECT pg_advisory_lock_shared(%s, %s)", key)  # announce, then look
        others = self.other_shard_counts()
        if others:
            self.conn.execute("SELECT pg_advisory_unlock_shared(%s, %s)", key)
            raise ShardCountMismatchError(self._mismatch(others))
        self.agreed = True

    def other_shard_counts(self) -> dict[int, list[int]]:
        """Shard counts other than ours announced by live relays of the group -> their backend pids."""
        rows = self.conn.execute(
            "SELECT objid::bigint, array_agg(pid ORDER BY pid) FROM pg_locks"
            " WHERE locktype = 'advisory' AND granted"
            f" AND database = {THIS_DATABASE} AND classid = %s::oid AND objsubid = 2"
            " AND objid <> %s::oid GROUP BY objid ORDER BY objid",
            (self.count_namespace & 0xFFFFFFFF, self.shards),
        ).fetchall()
        return {int(count): [int(p) for p in pids] for count, pids in rows}

    def _mismatch(self, others: dict[int, list[int]]) -> str:
        theirs = "; ".join(f"{count} (PostgreSQL backend pids {pids})" for count, pids in others.items())
        return (
            f"relay group {self.group!r}: this relay has OUTBOX_RELAY_SHARDS={self.shards}, live relays of"
            f" the group in this database have {theirs}. Relays with different shard counts would"
            " publish the same aggregates at once, so this relay takes no shard while they live."
            " Run every relay of a group with the same OUTBOX_RELAY_SHARDS; to change the count,"
            " stop the old relays first (this one then takes over by itself)."
        )

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


def _namespace(name: str) -> int:
    """A signed int4 key from a name: the first key of pg_advisory_lock(int4, int4)."""
    return zlib.crc32(name.encode()) - 2**31
