"""Both relays run the one contract suite (tests/relay/conformance.py), and publish the same events
into separate topics record-for-record identically."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from confluent_kafka import Message

from outbox import Outbox, TopicRouter
from relay.connect import ConnectClient
from tests.relay.conformance import (
    RelayConformance,
    RelayHarness,
    as_record,
    contract_events,
    expected_records,
    header,
    publish_contract_events,
    read_topics,
)
from tests.relay.conftest import RelayProcess
from tests.relay.connectors import CdcConnector
from tests.relay.events import engine_for


@dataclass
class PollingHarness:
    database_url: str
    factory: Callable[..., RelayProcess]
    name: str = "polling"
    mode: str = "idempotent"
    process: RelayProcess | None = None

    def start(self) -> None:
        self.process = self.factory(mode=self.mode)
        self.process.wait_ready()

    def restart(self) -> None:
        assert self.process is not None
        self.process.kill()  # kill -9: the batch in flight may be published again (at least once)
        self.start()


@dataclass
class CdcHarness:
    database_url: str
    factory: Callable[..., CdcConnector]
    name: str = "cdc"
    exactly_once: bool = False

    connector: CdcConnector | None = None

    def start(self) -> None:
        self.connector = self.factory(exactly_once=self.exactly_once)

    def restart(self) -> None:
        assert self.connector is not None
        with ConnectClient(self.connector.connect_url) as client:
            client.restart(self.connector.settings.connector_name)


class TestPollingRelay(RelayConformance):
    @pytest.fixture
    def harness(self, clean_outbox: str, relay_factory: Callable[..., RelayProcess]) -> RelayHarness:
        return PollingHarness(clean_outbox, relay_factory)


class TestPollingRelayTransactional(RelayConformance):
    exactly_once = True

    @pytest.fixture
    def harness(self, clean_outbox: str, relay_factory: Callable[..., RelayProcess]) -> RelayHarness:
        return PollingHarness(clean_outbox, relay_factory, name="polling-tx", mode="transactional")


class TestCdcRelay(RelayConformance):
    exactly_once = True

    @pytest.fixture
    def harness(self, cdc_db: str, cdc_factory: Callable[..., CdcConnector]) -> RelayHarness:
        return CdcHarness(cdc_db, cdc_factory, exactly_once=True)


def test_polling_and_cdc_publish_identical_records(
    clean_outbox: str,
    relay_factory: Callable[..., RelayProcess],
    cdc_db: str,
    cdc_factory: Callable[..., CdcConnector],
    bootstrap_servers: str,
    unique: Callable[[str], str],
    make_topics: Callable[..., None],
) -> None:
    """The same events (same ids and times) into two outboxes, one per relay, each with its own topic
    prefix: apart from the prefix, offsets and timestamps, Kafka holds the same records in the same order."""
    events = contract_events()
    prefixes = {"polling": unique("same-polling"), "cdc": unique("same-cdc")}
    outboxes = {k: Outbox(router=TopicRouter(p + ".{aggregate_type}")) for k, p in prefixes.items()}
    counts: dict[str, dict[str, int]] = {k: defaultdict(int) for k in prefixes}
    for relay, outbox in outboxes.items():
        for record in expected_records(outbox, events).values():
            counts[relay][record.topic] += 1
        make_topics(sorted(counts[relay]), partitions=3)
    PollingHarness(clean_outbox, relay_factory).start()
    CdcHarness(cdc_db, cdc_factory).start()
    publish_contract_events(engine_for(clean_outbox), outboxes["polling"], events)
    publish_contract_events(engine_for(cdc_db), outboxes["cdc"], events)

    got = {relay: read_topics(bootstrap_servers, counts[relay]) for relay in prefixes}
    # (topic suffix, partition) -> that partition's records in offset order
    logs: dict[str, dict[tuple[str, int], list[Message]]] = {}
    for relay, topics in got.items():
        logs[relay] = defaultdict(list)
        for topic, records in topics.items():
            for msg in sorted(records, key=lambda m: (m.partition(), m.offset())):
                logs[relay][topic[len(prefixes[relay]) :], msg.partition()].append(msg)
    # The same key lands on the same partition (both use Kafka's murmur2 partitioner) ...
    assert sorted(logs["polling"]) == sorted(logs["cdc"])
    assert {suffix for suffix, _ in logs["polling"]} == {".customer", ".order"}
    for place, polled in logs["polling"].items():
        streamed = logs["cdc"][place]
        # ... and each partition holds the same records in the same order.
        assert [header(m, "ce_id") for m in polled] == [header(m, "ce_id") for m in streamed], place
        for a, b in zip(polled, streamed, strict=True):
            ra, rb = as_record(a), as_record(b)
            assert (ra.key, ra.value, ra.headers) == (rb.key, rb.value, rb.headers)
