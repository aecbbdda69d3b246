"""Shard leases of several relays: who counts as a live relay of the group, and who owns which shard."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import psycopg

from outbox import migrations
from relay.leases import ShardLeases, lease_application_name
from tests.relay.conftest import RelayProcess, outbox_count, wait_for
from tests.relay.events import engine_for, outbox_for, write_numbered

AGGREGATES = [f"agg-{i}" for i in range(40)]


def holders(url: str, group: str, shards: int) -> dict[int, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        return ShardLeases(conn, group, shards).holders()


def backends(url: str) -> set[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()").fetchall()
    return {int(r[0]) for r in rows}


def test_relays_of_another_database_do_not_shrink_the_fair_share(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    new_database: Callable[[], str],
    new_topic: Callable[..., str],
) -> None:
    """Two relays of the same group name serve another database of the same server: the one relay of
    this database is alone in its group and must own (and publish) all 4 shards."""
    other = new_database()
    migrations.upgrade(other)
    for _ in range(2):
        relay_factory(env_extra={"OUTBOX_DATABASE_URL": other}, shards=4).wait_ready()
    relay = relay_factory(shards=4)
    relay.wait_ready()
    group = relay.env["OUTBOX_RELAY_GROUP"]
    write_numbered(engine_for(clean_outbox), outbox_for(new_topic("fair")), AGGREGATES, 5)
    wait_for(lambda: outbox_count(clean_outbox) == 0, 20, "the relay of this database to publish 4 shards")
    owners = holders(clean_outbox, group, 4)
    assert sorted(owners) == [0, 1, 2, 3] and len(set(owners.values())) == 1, owners
    assert set(owners.values()) <= backends(clean_outbox), "holders() reported another database's locks"
    assert relay.terminate() == 0


def test_a_long_group_name_still_shares_the_shards(
    relay_factory: Callable[..., RelayProcess], clean_outbox: str, unique: Callable[[str], str]
) -> None:
    """PostgreSQL cuts application_name to 63 bytes; a 100-character group must still count its relays."""
    group = unique("g" * 91)
    assert len(group) == 100
    first = relay_factory(env_extra={"OUTBOX_RELAY_GROUP": group}, shards=2)
    first.wait_ready()
    wait_for(lambda: len(holders(clean_outbox, group, 2)) == 2, 20, "the first relay to own both shards")
    relay_factory(env_extra={"OUTBOX_RELAY_GROUP": group}, shards=2).wait_ready()

    def shared() -> bool:
        return sorted(Counter(holders(clean_outbox, group, 2).values()).values()) == [1, 1]

    wait_for(shared, 20, "each of the two relays to own one shard")


def test_lease_application_names_fit_postgres_and_stay_distinct() -> None:
    assert lease_application_name("orders") == "outbox-relay:orders"  # short names stay readable
    prefix = "x" * 80
    a, b = lease_application_name(prefix + "-a"), lease_application_name(prefix + "-b")
    assert a != b
    assert len(a.encode()) <= 63 and len(b.encode()) <= 63
    assert a.startswith("outbox-relay:xxxx")
    assert lease_application_name(prefix + "-a") == a  # stable: every relay of the group agrees
