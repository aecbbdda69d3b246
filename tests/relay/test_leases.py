"""Shard leases of several relays: who counts as a live relay of the group, and who owns which shard."""

from __future__ import annotations

import threading
import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import psycopg
import pytest
from click.testing import CliRunner

from outbox import migrations
from outboxkit.cli import main
from relay.errors import GroupConflictError, ShardCountMismatchError
from relay.lease_names import lease_application_name, parse_application_name
from relay.leases import ShardLeases
from tests.isolated import free_ports
from tests.relay.conftest import RelayProcess, outbox_count, scrape, wait_for
from tests.relay.events import engine_for, outbox_for, write_numbered
from tests.services import consume_all, read_all

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


def test_a_lease_application_name_carries_the_instance_within_postgres_limit() -> None:
    name = lease_application_name("orders", "host-4711")
    assert name == "outbox-relay:orders/host-4711"
    assert parse_application_name(name) == ("orders", "host-4711")
    assert parse_application_name("outbox-relay:orders") == ("orders", None)  # an earlier version
    long_group, long_instance = "g" * 100, "pod-" + "x" * 60 + "-12"
    cut = lease_application_name(long_group, long_instance)
    assert len(cut.encode()) <= 63 and cut.startswith(lease_application_name(long_group))
    assert parse_application_name(cut)[0] == parse_application_name(lease_application_name(long_group))[0]
    medium = lease_application_name("inventory", long_instance)
    assert len(medium.encode()) == 63 and parse_application_name(medium)[1] == long_instance[: 63 - 23]


def published(port: int) -> float:
    lines = scrape(port, "/metrics")[1].decode().splitlines()
    return next(float(line.split()[1]) for line in lines if line.startswith("outbox_relay_published_total "))


def test_a_relay_with_another_shard_count_publishes_nothing_and_says_why(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    """Shard 1 of 4 and shard 1 of 8 are different aggregates under the same lock: a relay with 8
    shards beside one with 4 would publish aggregates the other one publishes, at the same time."""
    port_4, port_8 = free_ports(2)
    four = relay_factory(shards=4, metrics_port=port_4)
    four.wait_ready()
    group = four.env["OUTBOX_RELAY_GROUP"]
    wait_for(lambda: len(holders(clean_outbox, group, 4)) == 4, 20, "the first relay to own 4 shards")
    eight = relay_factory(shards=8, metrics_port=port_8)
    eight.wait_ready()
    wait_for(lambda: b"OUTBOX_RELAY_SHARDS" in eight.log_path.read_bytes(), 20, "the second relay to refuse")

    topic = new_topic("counts")
    total = write_numbered(engine_for(clean_outbox), outbox_for(topic), AGGREGATES, 5)
    wait_for(lambda: outbox_count(clean_outbox) == 0, 30, "the outbox to drain")
    assert len(consume_all(bootstrap_servers, topic, total, timeout=30)) == total
    assert (published(port_4), published(port_8)) == (total, 0)

    status, body = scrape(port_8, "/healthz")
    health = orjson.loads(body)
    assert status == 503 and health["status"] == "degraded", health
    assert "OUTBOX_RELAY_SHARDS=8" in health["reason"] and "have 4" in health["reason"], health
    refusals = [line for line in eight.log_path.read_text().splitlines() if '"level":"error"' in line]
    assert len(refusals) == 1, refusals  # said once, not every poll
    assert "stop the old relays first" in refusals[0]
    assert scrape(port_4, "/healthz")[0] == 200

    # The relay with 4 shards stops: the waiting one takes all 8 over by itself, healthy again.
    assert four.terminate() == 0
    wait_for(lambda: scrape(port_8, "/healthz")[0] == 200, 30, "the waiting relay to take over")
    assert orjson.loads(scrape(port_8, "/healthz")[1])["shards"] == list(range(8))
    more = write_numbered(engine_for(clean_outbox), outbox_for(topic), AGGREGATES, 1)
    wait_for(lambda: outbox_count(clean_outbox) == 0, 30, "the relay with 8 shards to drain the outbox")
    assert published(port_8) == more
    assert len(read_all(bootstrap_servers, topic)) == total + more
    assert eight.terminate() == 0


def test_a_second_relay_group_on_one_outbox_publishes_nothing_and_says_why(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
    unique: Callable[[str], str],
) -> None:
    """Two relays on one outbox table, started with different OUTBOX_RELAY_GROUPs: the second is
    refused, stays up and says why, no event is published twice, and once the first group's relay
    stops the second takes over."""
    port_a, port_b = free_ports(2)
    first = relay_factory(shards=2, metrics_port=port_a)
    first.wait_ready()
    first_group = first.env["OUTBOX_RELAY_GROUP"]
    wait_for(
        lambda: len(holders(clean_outbox, first_group, 2)) == 2, 20, "the first relay to own both shards"
    )
    second_group = unique("second")
    second = relay_factory(env_extra={"OUTBOX_RELAY_GROUP": second_group}, shards=2, metrics_port=port_b)
    second.wait_ready()
    wait_for(lambda: b"OUTBOX_RELAY_GROUP" in second.log_path.read_bytes(), 20, "the second relay to refuse")

    topic = new_topic("groups")
    total = write_numbered(engine_for(clean_outbox), outbox_for(topic), AGGREGATES, 5)
    wait_for(lambda: outbox_count(clean_outbox) == 0, 30, "the outbox to drain")
    records = read_all(bootstrap_servers, topic)
    ids = Counter(dict(msg.headers() or [])["ce_id"] for msg in records)
    assert len(ids) == total and max(ids.values()) == 1, "an event was published twice"
    assert (published(port_a), published(port_b)) == (total, 0)

    status, body = scrape(port_b, "/healthz")
    health = orjson.loads(body)
    assert status == 503 and health["status"] == "degraded" and health["shards"] == [], health
    assert f"group {first_group!r}" in health["reason"] and "OUTBOX_RELAY_GROUP" in health["reason"], health
    refusals = [line for line in second.log_path.read_text().splitlines() if '"level":"error"' in line]
    assert len(refusals) == 1, refusals  # said once, not every poll; and no crash loop
    assert second.alive() and scrape(port_a, "/healthz")[0] == 200
    status = CliRunner().invoke(
        main,
        ["relay", "status"],
        env={
            "OUTBOX_DATABASE_URL": clean_outbox,
            "OUTBOX_RELAY_GROUP": second_group,
            "OUTBOX_RELAY_SHARDS": "2",
        },
    )
    assert status.exit_code == 0, status.output
    pid = holders(clean_outbox, first_group, 2)[0]
    owner = orjson.loads(scrape(port_a, "/healthz")[1])["instance"]
    owned = f"0: {owner} (pid {pid}), 1: {owner} (pid {pid})"
    assert f"shards (2, group {second_group}): {owned}" in status.output, status.output
    assert (
        f"relay groups:       {first_group} (instances {owner}; pids {pid}) on table public.outbox_events"
        in status.output
    )
    assert f"warning: relays of group {second_group} take no shard while group {first_group}" in status.output

    assert first.terminate() == 0
    wait_for(lambda: scrape(port_b, "/healthz")[0] == 200, 30, "the second group's relay to take over")
    more = write_numbered(engine_for(clean_outbox), outbox_for(topic), AGGREGATES, 1)
    wait_for(lambda: outbox_count(clean_outbox) == 0, 30, "the second group's relay to drain the outbox")
    assert published(port_b) == more
    assert len(read_all(bootstrap_servers, topic)) == total + more
    assert second.terminate() == 0


def locks_of(url: str, pid: int) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE pid = %s", (pid,)).fetchone()
    return int(row[0]) if row else 0


def wait_released(url: str, pids: list[int]) -> None:
    """Until PostgreSQL released the locks of the closed sessions `pids` (their backends exited)."""
    wait_for(lambda: sum(locks_of(url, pid) for pid in pids) == 0, 10, f"the locks of backends {pids} to go")


def close_while_its_backend_waits(conn: psycopg.Connection[Any], blocker: psycopg.Connection[Any]) -> int:
    """Close `conn` while its backend waits for a lock `blocker` holds; returns the backend's pid.

    PostgreSQL releases a closed session's locks when its backend exits, a moment after the client
    closed the connection (half the time still held right after close() here, up to ~20 ms; longer
    on a loaded machine). The backend only notices the close once its statement is done: this holds
    that moment open until `blocker` lets go of the lock (pg_advisory_unlock_all()).
    """
    pid = conn.info.backend_pid
    key = 7_000_000 + pid  # a session lock of blocker's own; no relay uses single-key session locks
    blocker.execute("SELECT pg_advisory_lock(%s)", (key,))
    conn.pgconn.send_query(f"SELECT pg_advisory_lock({key})".encode())
    wait_for(
        lambda: (
            blocker.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted", (pid,)).fetchone()
            == (1,)
        ),
        10,
        "the closing session's backend to wait for the lock",
    )
    conn.close()
    return pid


def test_the_shard_count_changes_once_the_old_relays_are_gone(
    clean_outbox: str, unique: Callable[[str], str]
) -> None:
    """A rolling change: a relay with the new count waits while one with the old count lives, then
    takes over; an old relay restarted meanwhile waits in turn. The old relay is gone when
    PostgreSQL has released its locks, which is after its connection closed: in that window the
    new relay goes on waiting, owning nothing (the daemon then reports /healthz degraded, see
    test_a_relay_with_another_shard_count_publishes_nothing_and_says_why)."""
    group = unique("counts")
    with (
        psycopg.connect(clean_outbox, autocommit=True) as old_conn,
        psycopg.connect(clean_outbox, autocommit=True) as new_conn,
        psycopg.connect(clean_outbox, autocommit=True) as restarted_conn,
        psycopg.connect(clean_outbox, autocommit=True) as blocker,
    ):
        old, new = ShardLeases(old_conn, group, 4), ShardLeases(new_conn, group, 8)
        assert old.rebalance() == ({0, 1, 2, 3}, set())
        with pytest.raises(ShardCountMismatchError, match=r"OUTBOX_RELAY_SHARDS=8.*have 4"):
            new.rebalance()
        assert new.owned == set()
        assert old.rebalance() == (set(), set())  # the relay already publishing goes on, all 4 shards
        assert old.owned == {0, 1, 2, 3}

        old_pid = close_while_its_backend_waits(old_conn, blocker)  # the old relay stopped
        # Its connection is closed, its locks are not released yet: the new relay still waits.
        with pytest.raises(ShardCountMismatchError, match="have 4"):
            new.rebalance()
        assert new.owned == set() and sorted(holders(clean_outbox, group, 4)) == [0, 1, 2, 3]

        blocker.execute("SELECT pg_advisory_unlock_all()")  # the old backend finishes and exits
        wait_for(lambda: locks_of(clean_outbox, old_pid) == 0, 10, "the old relay's locks to be released")
        assert new.rebalance()[0] == set(range(8))
        with pytest.raises(ShardCountMismatchError, match="have 8"):
            ShardLeases(restarted_conn, group, 4).rebalance()


def test_two_relays_starting_together_with_different_counts_take_nothing(
    clean_outbox: str, unique: Callable[[str], str]
) -> None:
    """Both announced before either looked: whichever looks, sees the other; neither takes a shard."""
    group = unique("counts")
    with (
        psycopg.connect(clean_outbox, autocommit=True) as first_conn,
        psycopg.connect(clean_outbox, autocommit=True) as second_conn,
    ):
        first = ShardLeases(first_conn, group, 4)
        # The second relay's announcement, made just before the first one looks.
        second_conn.execute("SELECT pg_advisory_lock_shared(%s, 8)", (first.count_namespace,))
        with pytest.raises(ShardCountMismatchError, match="have 8"):
            first.rebalance()
        assert first.owned == set() and holders(clean_outbox, group, 4) == {}
        second = ShardLeases(second_conn, group, 8)
        assert second.rebalance()[0] == set(range(8))  # the first withdrew: the second may go on


def test_a_second_group_on_one_outbox_table_takes_nothing_and_says_why(
    clean_outbox: str, unique: Callable[[str], str]
) -> None:
    """Shard locks are the table's, whatever the group: relays of two groups would otherwise each
    own shard 0 and publish the same events, each with its own transactional ids and progress."""
    first_group, second_group = unique("first"), unique("second")
    with (
        psycopg.connect(
            clean_outbox, autocommit=True, application_name=lease_application_name(first_group)
        ) as first_conn,
        psycopg.connect(clean_outbox, autocommit=True) as second_conn,
        psycopg.connect(clean_outbox, autocommit=True) as third_conn,
    ):
        first = ShardLeases(first_conn, first_group, 4)
        assert first.rebalance() == ({0, 1, 2, 3}, set())
        for shards in (4, 8):  # the group is checked first, whatever the count
            second = ShardLeases(second_conn, second_group, shards)
            with pytest.raises(GroupConflictError) as refused:
                second.rebalance()
            assert second.owned == set()
            said = str(refused.value)
            pid = first_conn.info.backend_pid
            assert f"relay group {second_group!r}" in said and f"group {first_group!r}" in said, said
            assert f"[{pid}]" in said and "table public.outbox_events" in said, said
            assert "OUTBOX_RELAY_GROUP" in said and f"stop the relays of group {first_group!r}" in said, said
        # The refused relay holds nothing: the first one goes on, alone, with all its shards.
        assert first.rebalance() == (set(), set()) and first.owned == {0, 1, 2, 3}
        assert first.live_instances() == 1
        assert set(holders(clean_outbox, second_group, 4).values()) == {first_conn.info.backend_pid}
        assert ShardLeases(third_conn, first_group, 4).groups() == {first_group: [pid]}

        first_conn.close()  # the first group's relay stopped: the second group may take the table over
        wait_for(lambda: locks_of(clean_outbox, pid) == 0, 10, "the first relay's locks to be released")
        assert second.rebalance()[0] == set(range(8))


def by_group(salt: str, group: str) -> int:
    """The first key of an earlier version's by-group advisory locks (a signed int4 of the name)."""
    return zlib.crc32((salt + group).encode()) - 2**31


def test_relays_of_earlier_versions_and_this_one_exclude_each_other_while_upgrading(
    clean_outbox: str, unique: Callable[[str], str]
) -> None:
    """Relays before the table's locks locked shards and announced their count by group: during a
    rolling upgrade an old relay (its locks taken here by hand) and a new one of the group must
    neither own one shard at once nor miss each other in the fair share or the count check."""
    group = unique("upgrade")
    shard_key, count_key = by_group("outboxkit-relay:", group), by_group("outboxkit-relay-shards:", group)
    with (
        psycopg.connect(clean_outbox, autocommit=True) as old_conn,
        psycopg.connect(clean_outbox, autocommit=True) as new_conn,
        psycopg.connect(clean_outbox, autocommit=True) as old_8_conn,
        psycopg.connect(clean_outbox, autocommit=True) as later_conn,
    ):
        old_conn.execute("SELECT pg_advisory_lock_shared(%s, 4)", (count_key,))
        assert old_conn.execute("SELECT pg_try_advisory_lock(%s, 0)", (shard_key,)).fetchone() == (True,)
        new = ShardLeases(new_conn, group, 4)
        assert new.rebalance() == ({1, 2}, set())  # the old relay counts: a fair share is 2 of 4
        assert new.live_instances() == 2
        old_pid, new_pid = old_conn.info.backend_pid, new_conn.info.backend_pid
        assert holders(clean_outbox, group, 4) == {0: old_pid, 1: new_pid, 2: new_pid}
        # The old relay cannot take what the new one owns, nor does it miss the new one's count.
        assert old_conn.execute("SELECT pg_try_advisory_lock(%s, 1)", (shard_key,)).fetchone() == (False,)
        assert old_conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
            " AND classid = %s::oid AND objid = 4",
            (count_key & 0xFFFFFFFF,),
        ).fetchone() == (2,)
        # An old relay of the group with another shard count keeps a new relay from starting.
        old_8_conn.execute("SELECT pg_advisory_lock_shared(%s, 8)", (count_key,))
        with pytest.raises(ShardCountMismatchError, match="have 8"):
            ShardLeases(later_conn, group, 4).rebalance()

        old_conn.close()
        wait_for(lambda: locks_of(clean_outbox, old_pid) == 0, 10, "the old relay's locks to be released")
        assert new.rebalance()[0] == {0, 3}


def start_together(barrier: threading.Barrier, leases: ShardLeases, results: dict[str, object]) -> None:
    barrier.wait()
    try:
        results[leases.group] = leases.rebalance()[0]
    except GroupConflictError:
        results[leases.group] = "refused"


def test_of_two_groups_starting_together_the_first_goes_on(
    clean_outbox: str, unique: Callable[[str], str]
) -> None:
    """Relays agree one at a time: started at the same instant, one group owns the table (all of it:
    the refused one never counted as live) and the other is refused; never both refused, as
    announce-then-look alone would allow."""
    for round_ in range(30):
        barrier, results = threading.Barrier(2), {}
        with (
            psycopg.connect(clean_outbox, autocommit=True) as a,
            psycopg.connect(clean_outbox, autocommit=True) as b,
        ):
            leases = [ShardLeases(a, unique(f"a{round_}"), 2), ShardLeases(b, unique(f"b{round_}"), 2)]
            threads = [threading.Thread(target=start_together, args=(barrier, x, results)) for x in leases]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert sorted(map(str, results.values())) == ["refused", "{0, 1}"], (round_, results)
            pids = [a.info.backend_pid, b.info.backend_pid]
        wait_released(clean_outbox, pids)
