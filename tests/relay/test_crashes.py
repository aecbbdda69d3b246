"""kill -9 at random moments, several relays at once, and recovery after a crash between the Kafka
commit and the PostgreSQL delete. Counted with a read_committed consumer: lost, duplicated, reordered."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import psycopg
import pytest

from outbox import OutboxSettings
from outbox.envelope import KafkaRecord
from relay.identity import SourceIdentity
from relay.polling import PollingRelay
from relay.progress import ProgressLog
from relay.publisher import BatchResult, TransactionalPublisher
from relay.settings import RelaySettings
from relay.store import OutboxStore
from tests.relay.conftest import RelayProcess, outbox_count, unpublished, wait_for
from tests.relay.events import (
    assert_complete_in_order,
    by_key,
    engine_for,
    outbox_for,
    write_numbered,
    write_rounds,
)
from tests.services import read_all

AGGREGATES = [f"agg-{i}" for i in range(20)]


def published_before_kill(url: str, waiting: int, share: float, timeout: float = 30) -> None:
    """Until `share` of the `waiting` events are published, watched every few ms."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            if unpublished(conn) <= waiting * (1 - share):
                return
            assert time.monotonic() < deadline, f"the relay did not publish {share:.0%} of {waiting} events"
            time.sleep(0.002)


@pytest.mark.parametrize("mode", ["idempotent", "transactional"])
def test_kill_9_at_random_moments_loses_nothing(
    mode: str,
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    topic = new_topic(f"kill-{mode}", partitions=3)
    engine = engine_for(clean_outbox)
    outbox = outbox_for(topic)
    # Before each relay starts, a burst of 20 x 250 events, so every kill (0-100 ms after the relay
    # started publishing) lands while a backlog drains; meanwhile a writer keeps adding events to 5 other
    # aggregates, so relays also die while new transactions commit.
    live = [f"live-{i}" for i in range(5)]
    live_rounds = 120
    writer = threading.Thread(target=write_rounds, args=(engine, outbox, live, 0, live_rounds, 0.02))
    writer.start()
    rng = random.Random(mode)
    killed_mid_stream = 0
    per_burst, rounds = 250, 8
    for round_no in range(rounds):
        for seq in range(round_no * per_burst, (round_no + 1) * per_burst, 50):
            write_rounds(engine, outbox, AGGREGATES, seq, seq + 50)
        waiting = outbox_count(clean_outbox)
        relay = relay_factory(mode=mode, batch_size=97)
        # Kill while it drains, at a random point of the drain (a moment in time would land after
        # it on a fast machine: 5,000 events drain in about 100 ms there).
        published_before_kill(clean_outbox, waiting, rng.uniform(0.05, 0.6))
        relay.kill()
        killed_mid_stream += outbox_count(clean_outbox) > 0
    writer.join()
    assert killed_mid_stream >= 3, "too few kills landed while events were waiting"
    last = relay_factory(mode=mode)
    wait_for(lambda: outbox_count(clean_outbox) == 0, 90, "the outbox to drain")
    assert last.terminate() == 0

    per_aggregate = rounds * per_burst
    total = len(AGGREGATES) * per_aggregate + len(live) * live_rounds
    records = read_all(bootstrap_servers, topic)
    print(
        f"\n{mode}: {len(records)} records for {total} events ({len(records) - total} duplicates), "
        f"{killed_mid_stream}/8 kills with events waiting"
    )
    exactly_once = mode == "transactional"
    burst_records = [m for m in records if not (m.key() or b"").startswith(b"live-")]
    assert_complete_in_order(burst_records, AGGREGATES, per_aggregate, exactly_once=exactly_once)
    live_records = [m for m in records if (m.key() or b"").startswith(b"live-")]
    assert_complete_in_order(live_records, live, live_rounds, exactly_once=exactly_once)
    if mode == "transactional":
        assert len(records) == total


@pytest.mark.parametrize("mode", ["idempotent", "transactional"])
def test_three_relays_share_shards_and_survive_a_kill(
    mode: str,
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    topic = new_topic(f"three-{mode}", partitions=4)
    engine = engine_for(clean_outbox)
    outbox = outbox_for(topic)
    write_numbered(engine, outbox, AGGREGATES, 100)
    relays = [relay_factory(mode=mode, shards=6, batch_size=50) for _ in range(3)]
    time.sleep(2.0)
    relays[0].kill()  # its shards go to the other two
    write_rounds(engine, outbox, AGGREGATES, 100, 150)
    wait_for(lambda: outbox_count(clean_outbox) == 0, 60, "the outbox to drain")
    for relay in relays[1:]:
        assert relay.terminate() == 0

    records = read_all(bootstrap_servers, topic)
    assert_complete_in_order(records, AGGREGATES, 150, exactly_once=(mode == "transactional"))


def transactional_settings(group: str) -> RelaySettings:
    return RelaySettings(
        mode="transactional",
        group=group,
        progress_topic=f"{group}-progress",
        metrics_port=0,
        poll_interval=0.2,
    )


def publish_then_crash(url: str, bootstrap_servers: str, settings: RelaySettings, limit: int) -> BatchResult:
    """Publish the next batch as the group's relay would, then 'crash': the outbox is not told."""
    with psycopg.connect(url, autocommit=True) as conn:
        assert settings.group is not None
        progress = ProgressLog(
            bootstrap_servers,
            settings.progress_topic,
            settings.group,
            settings.shards,
            SourceIdentity.of(conn),
        )
        progress.ensure_topic()
        rows = OutboxStore(conn, keep=False, retention_days=7).fetch(0, 1, limit)
        batch = [(event_id, record) for event_id, _, record in rows if isinstance(record, KafkaRecord)]
        assert len(batch) == limit
        return TransactionalPublisher(bootstrap_servers, settings, 0, progress).publish(batch)


def drain_with_a_relay(url: str, bootstrap_servers: str, settings: RelaySettings) -> None:
    relay = PollingRelay(
        OutboxSettings(database_url=url, kafka_bootstrap_servers=bootstrap_servers), settings
    )
    thread = threading.Thread(target=relay.run)
    thread.start()
    try:
        wait_for(lambda: outbox_count(url) == 0, 30, "the outbox to drain")
    finally:
        relay.stop()
        thread.join(30)


def test_crash_between_kafka_commit_and_postgres_delete_publishes_no_duplicate(
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
    unique: Callable[[str], str],
) -> None:
    """Publish a batch in a Kafka transaction, then 'crash' before deleting it from the outbox:
    the next relay of the group finds the batch in the progress log and does not publish it again."""
    topic = new_topic("recover")
    write_numbered(engine_for(clean_outbox), outbox_for(topic), ["x", "y"], 10)
    settings = transactional_settings(unique("recover"))
    result = publish_then_crash(clean_outbox, bootstrap_servers, settings, 12)
    assert len(result.delivered) == 12
    assert outbox_count(clean_outbox) == 20  # the 12 published rows are still in the outbox

    drain_with_a_relay(clean_outbox, bootstrap_servers, settings)
    seqs = by_key(read_all(bootstrap_servers, topic))
    assert seqs == {"x": list(range(10)), "y": list(range(10))}


def test_crash_while_isolating_a_poison_record_publishes_no_duplicate(
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
    unique: Callable[[str], str],
) -> None:
    """A batch with a record the broker refuses is re-sent one record per transaction to find the
    culprit. A crash before the outbox is told must not publish the records committed alone again:
    the progress record of each of those transactions names all of them."""
    topic = new_topic("isolate", config={"max.message.bytes": "20000"})
    engine = engine_for(clean_outbox)
    write_numbered(engine, outbox_for(topic), ["a", "b"], 2)
    write_numbered(engine, outbox_for(topic), ["poison"], 1, payload_bytes=40_000)
    write_numbered(engine, outbox_for(topic), ["c", "d"], 2)
    settings = transactional_settings(unique("isolate"))
    # The broker refuses the whole transaction, so the records are sent again one by one, up to the
    # poison (what follows it is read again by the next batch).
    result = publish_then_crash(clean_outbox, bootstrap_servers, settings, 9)
    assert len(result.delivered) == 4 and len(result.poisoned) == 1
    assert outbox_count(clean_outbox) == 9

    drain_with_a_relay(clean_outbox, bootstrap_servers, settings)
    seqs = by_key(read_all(bootstrap_servers, topic))
    assert seqs == {"a": [0, 1], "b": [0, 1], "c": [0, 1], "d": [0, 1]}, "published again after the crash"
