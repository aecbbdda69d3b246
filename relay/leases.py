"""Which shards this relay publishes: PostgreSQL session advisory locks, one per shard of the table.

A lock lives as long as the relay's lease connection. When a relay dies (kill -9 included) its
connection closes, PostgreSQL releases its locks as the backend exits (a moment after the close),
and a standby relay takes the shards over on its next `rebalance()` (every poll interval): failover
within about one poll interval.

The locks name the outbox table (relay/identity.py: schema and table; advisory locks are per
database), not the group: a shard of one table has one owner, whatever group its relays were given.
One group per table, too: relays of two groups would each keep their own transactional ids and
progress records for the same shards, so a shard passing from one group to the other would lose
what its last transaction did (exactly-once would publish it again). Each relay announces its
group on the table with a shared advisory lock (group namespace, hash of the group), then looks
for live announcements of another group, and takes no shard while there are some
(GroupConflictError); the relays already publishing go on.

Fair share: the live relays of the table are those that announced its shard count (below) *in
this database* (relays of a same-named group serving another database of the server are not
competitors, and a refused relay takes nothing, so it must not shrink anyone's share); a relay
holding more than ceil(shards / live relays) gives the surplus back between batches, when nothing
of those shards is in flight, so a shard changes hands without reordering.

One shard count per table: shard 1 of 4 and shard 1 of 8 are different aggregates under the same
lock, so relays that split the outbox differently would publish one aggregate at once. Each relay
announces its count with a shared advisory lock (count namespace, shards) on its lease connection,
then looks for live announcements of another count, and takes shards only when there are none
(ShardCountMismatchError); once agreed it keeps its announcements for the connection's life. A
refused relay withdraws every announcement and asks again on its next rebalance: relays already
publishing go on, and during a rolling change of the count (or of the group) the new relays take
over by themselves once the last old one has stopped.

Agreeing is one short transaction under a transaction-scoped lock of the table, so no two relays
announce and look at the same time: of two that start together with different settings, the first
goes on and the second sees it. (Announce-then-look alone would be safe, but both could see each
other and both wait.)

Upgrading: relays of earlier versions locked shards and announced their count by group (the
`BY_GROUP_*` namespaces). A relay of this version takes each shard's by-group lock too (both or
neither), announces its count there too and counts the relays found there, so in a rolling upgrade
of a group old and new relays exclude each other and share fairly. Relays of earlier versions do
not announce their group on the table: a second group is only refused among relays of this version.
These by-group locks can go once no relay of an earlier version can be running.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import psycopg

from relay.errors import GroupConflictError, ShardCountMismatchError
from relay.identity import OutboxTable
from relay.lease_names import lease_application_name, parse_application_name

SHARD_SALT = "outboxkit-relay-table:"
COUNT_SALT = "outboxkit-relay-table-shards:"
GROUP_SALT = "outboxkit-relay-table-group:"
AGREE_SALT = "outboxkit-relay-table-agree:"
BY_GROUP_SHARD_SALT = "outboxkit-relay:"
"""Earlier versions' shard locks: (namespace of this salt + group, shard)."""
BY_GROUP_COUNT_SALT = "outboxkit-relay-shards:"
"""Earlier versions' count announcements: (namespace of this salt + group, shards)."""
AGREE_LOCK_TIMEOUT = "5s"
"""How long a relay waits for another one's agreement (a few ms) before it backs off and retries."""
# The current database's oid, as pg_locks names it: advisory locks of other databases are others'.
THIS_DATABASE = "(SELECT oid FROM pg_database WHERE datname = current_database())"
# Granted two-key advisory locks of this database (pg_locks shows the first key as classid, the
# second as objid, objsubid 2).
ADVISORY = f"locktype = 'advisory' AND granted AND database = {THIS_DATABASE} AND objsubid = 2"


class ShardLeases:
    """Owns a subset of `shards` of the outbox table for relay group `group` through `conn`
    (autocommit, dedicated: the lease connection). `table` is looked up on `conn` when not given."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        group: str,
        shards: int,
        max_per_instance: int = 0,
        table: OutboxTable | None = None,
    ) -> None:
        self.conn = conn
        self.group = group
        self.shards = shards
        self.max_per_instance = max_per_instance
        self.table = table or OutboxTable.of(conn)
        on = self.table.qualified
        # pg_try_advisory_lock(int4, int4): the table's shard namespace, then the shard number.
        self.namespace = _namespace(SHARD_SALT + on)
        # pg_advisory_lock_shared(int4, int4): the table's shard-count namespace, then the count.
        self.count_namespace = _namespace(COUNT_SALT + on)
        # pg_advisory_lock_shared(int4, int4): the table's group namespace, then the group's hash.
        self.group_namespace = _namespace(GROUP_SALT + on)
        self.group_key = _namespace(group)
        self.agree_namespace = _namespace(AGREE_SALT + on)
        self.by_group_namespace = _namespace(BY_GROUP_SHARD_SALT + group)
        self.by_group_count_namespace = _namespace(BY_GROUP_COUNT_SALT + group)
        self.agreed = False
        self.owned: set[int] = set()

    @property
    def application_name(self) -> str:
        return lease_application_name(self.group)

    def live_instances(self) -> int:
        """Relays of the table in this database that agreed on this shard count (this one
        included), and relays of earlier versions of the group with this count."""
        row = self.conn.execute(
            f"SELECT count(DISTINCT pid) FROM pg_locks WHERE {ADVISORY}"
            " AND classid IN (%s::oid, %s::oid) AND objid = %s::oid",
            (_oid(self.count_namespace), _oid(self.by_group_count_namespace), self.shards),
        ).fetchone()
        return max(1, int(row[0]) if row else 1)

    def fair_share(self) -> int:
        if self.max_per_instance:
            return min(self.max_per_instance, self.shards)
        return math.ceil(self.shards / self.live_instances())

    def rebalance(self) -> tuple[set[int], set[int]]:
        """Take free shards up to the fair share, give back the surplus; returns (gained, released).

        Raises a LeaseRefusedError, owning nothing, while a relay of another group
        (GroupConflictError) or with another count (ShardCountMismatchError) is live on the table.
        """
        self._agree()
        share = self.fair_share()
        released: set[int] = set()
        while len(self.owned) > share:
            shard = max(self.owned)
            self._unlock(shard)
            self.owned.discard(shard)
            released.add(shard)
        gained: set[int] = set()
        for shard in range(self.shards):
            if len(self.owned) >= share:
                break
            if shard in self.owned:
                continue
            # The table's lock, then the by-group one of earlier versions; both, or neither. (CASE
            # evaluates in order: the second is only tried once the first is held.)
            row = self.conn.execute(
                "SELECT CASE WHEN NOT pg_try_advisory_lock(%(t)s, %(s)s) THEN false"
                " WHEN pg_try_advisory_lock(%(g)s, %(s)s) THEN true"
                " ELSE NOT pg_advisory_unlock(%(t)s, %(s)s) END",
                {"t": self.namespace, "g": self.by_group_namespace, "s": shard},
            ).fetchone()
            if row and row[0]:
                self.owned.add(shard)
                gained.add(shard)
        return gained, released

    def _agree(self) -> None:
        if self.agreed:
            return
        group = (self.group_namespace, self.group_key)
        counts = ((self.count_namespace, self.shards), (self.by_group_count_namespace, self.shards))
        with self.conn.transaction():
            self.conn.execute(f"SET LOCAL lock_timeout = '{AGREE_LOCK_TIMEOUT}'")
            self.conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (self.agree_namespace,))
            # Announce, then look; the group before the count, so that a relay refused for its group
            # never announced a count (a live relay's share would shrink while it was there).
            # Session locks ignore the transaction's end: withdrawn here, they stay withdrawn.
            self._announce(group)
            groups = self.other_groups()
            if groups:
                self._withdraw(group)
                raise GroupConflictError(self._group_conflict(groups))
            self._announce(*counts)
            others = self.other_shard_counts()
            if others:
                self._withdraw(group, *counts)
                raise ShardCountMismatchError(self._mismatch(others))
        self.agreed = True

    def _announce(self, *keys: tuple[int, int]) -> None:
        for key in keys:
            self.conn.execute("SELECT pg_advisory_lock_shared(%s, %s)", key)

    def _withdraw(self, *keys: tuple[int, int]) -> None:
        for key in keys:
            self.conn.execute("SELECT pg_advisory_unlock_shared(%s, %s)", key)

    def groups(self) -> dict[str, list[int]]:
        """Relay groups live on this table (this one included, once agreed) -> their backend pids;
        a group is named by its lease connections' application_name."""
        return self._groups(exclude=None)

    def other_groups(self) -> dict[str, list[int]]:
        """Relay groups other than ours live on this table -> their backend pids."""
        return self._groups(exclude=self.group_key)

    def _groups(self, exclude: int | None) -> dict[str, list[int]]:
        rows = self.conn.execute(
            f"SELECT l.pid, a.application_name FROM (SELECT pid FROM pg_locks WHERE {ADVISORY}"
            " AND classid = %s::oid AND objid IS DISTINCT FROM %s::oid) l"
            " LEFT JOIN pg_stat_activity a ON a.pid = l.pid ORDER BY l.pid",
            (_oid(self.group_namespace), None if exclude is None else _oid(exclude)),
        ).fetchall()
        found: dict[str, list[int]] = {}
        for pid, application_name in rows:
            group, _instance = parse_application_name(application_name)
            found.setdefault(group, []).append(int(pid))
        return found

    def other_shard_counts(self) -> dict[int, list[int]]:
        """Shard counts other than ours announced by live relays of the table (or by relays of an
        earlier version of the group) -> their backend pids."""
        rows = self.conn.execute(
            "SELECT objid::bigint, array_agg(DISTINCT pid ORDER BY pid) FROM pg_locks"
            f" WHERE {ADVISORY} AND classid IN (%s::oid, %s::oid) AND objid <> %s::oid"
            " GROUP BY objid ORDER BY objid",
            (_oid(self.count_namespace), _oid(self.by_group_count_namespace), self.shards),
        ).fetchall()
        return {int(count): [int(p) for p in pids] for count, pids in rows}

    def _group_conflict(self, others: dict[str, list[int]]) -> str:
        theirs = "; ".join(
            f"group {group!r} (PostgreSQL backend pids {pids})" for group, pids in others.items()
        )
        first = next(iter(others))
        return (
            f"relay group {self.group!r} may not publish {self.table.describe()}: live relays of"
            f" {theirs} publish it. One outbox table is published by one group (two would publish"
            " the same events, each with its own transactional ids and progress), so this relay"
            " takes no shard while they live. Give every relay of this outbox the same"
            " OUTBOX_RELAY_GROUP (or leave it unset everywhere: it is derived from the outbox); to"
            f" move the outbox to group {self.group!r}, stop the relays of group {first!r} first"
            " (this one then takes over by itself)."
        )

    def _mismatch(self, others: dict[int, list[int]]) -> str:
        theirs = "; ".join(f"{count} (PostgreSQL backend pids {pids})" for count, pids in others.items())
        return (
            f"relay group {self.group!r}: this relay has OUTBOX_RELAY_SHARDS={self.shards}, live relays of"
            f" {self.table.describe()} have {theirs}. Relays with different shard counts would"
            " publish the same aggregates at once, so this relay takes no shard while they live."
            " Run every relay of an outbox with the same OUTBOX_RELAY_SHARDS; to change the count,"
            " stop the old relays first (this one then takes over by itself)."
        )

    def _unlock(self, shard: int) -> None:
        self.conn.execute(
            "SELECT pg_advisory_unlock(%s, %s), pg_advisory_unlock(%s, %s)",
            (self.namespace, shard, self.by_group_namespace, shard),
        )

    def release_all(self) -> None:
        for shard in sorted(self.owned):
            self._unlock(shard)
        self.owned.clear()

    def holders(self) -> dict[int, int]:
        """shard -> pid of the PostgreSQL backend holding it: any relay of this table in this
        database, or a relay of an earlier version of the group."""
        rows = self.conn.execute(
            f"SELECT objid, pid, classid = %s::oid FROM pg_locks WHERE {ADVISORY}"
            " AND classid IN (%s::oid, %s::oid) ORDER BY 3",
            (_oid(self.namespace), _oid(self.namespace), _oid(self.by_group_namespace)),
        ).fetchall()
        # The table's lock last: it names the owner when both are held (by one relay, normally).
        return {int(objid): int(pid) for objid, pid, _ in rows}


def live_relays(conn: psycopg.Connection[Any], table: OutboxTable | None = None) -> list[int]:
    """The PostgreSQL backend pids of the lease connections of the relays that hold a shard of the
    outbox table (`table`, else the one `conn` finds): empty when no relay publishes it."""
    on = (table or OutboxTable.of(conn)).qualified
    rows = conn.execute(
        f"SELECT DISTINCT pid FROM pg_locks WHERE {ADVISORY} AND classid = %s::oid ORDER BY pid",
        (_oid(_namespace(SHARD_SALT + on)),),
    ).fetchall()
    return [int(row[0]) for row in rows]


def _oid(key: int) -> int:
    """A signed int4 lock key as pg_locks shows it (an unsigned oid)."""
    return key & 0xFFFFFFFF


def _namespace(name: str) -> int:
    """A signed int4 key from a name: the first key of pg_advisory_lock(int4, int4)."""
    return zlib.crc32(name.encode()) - 2**31
