"""Partitions added to a status topic while the gateway runs are followed from their beginning:
events written to them, also before the gateway noticed, reach the clients; a resume may name them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka.admin import NewPartitions

from tests.daemons import http_json
from tests.outboxkit.gateway.conftest import Gateway, StatusWriter, receive, receive_until, subscribe, token
from tests.services import kafka_admin


def test_partitions_added_while_running_are_followed_from_their_beginning(
    bootstrap_servers: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic("gateway-grows", partitions=1)
    gateway = Gateway(
        bootstrap_servers, topic, tmp_path / "gateway.log", ("--partition-check-interval", "2")
    ).start()
    try:
        client = gateway.client(token("alice"))
        assert receive(client)["type"] == "connected"
        subscribe(client, "user:alice")
        assert receive(client)["type"] == "subscribed"
        admin = kafka_admin(bootstrap_servers)
        for future in admin.create_partitions([NewPartitions(topic, 3)]).values():
            future.result(timeout=30)
        # written at once, before the gateway's next look at the metadata (every 2 s) in all likelihood
        writer = StatusWriter(bootstrap_servers, topic)  # a new producer: it knows the 3 partitions
        landed = writer.write(*[(f"job-{n}", "alice", {"n": n}) for n in range(30)])
        assert {p for p, _o in landed} == {0, 1, 2}, f"the writer did not use the new partitions: {landed}"
        got = receive_until(client, lambda got: len(got) == 30, timeout=30)
        assert sorted(m["event"]["data"]["n"] for m in got) == list(range(30))
        for partition in (1, 2):  # in order within each partition, from its first offset
            offsets = [m["version"]["offset"] for m in got if m["version"]["partition"] == partition]
            assert offsets == sorted(offsets) and offsets[0] == 0, offsets
        deadline = time.monotonic() + 10
        while True:
            _status, about = http_json(gateway.port, "/")
            if {p for _t, p, _o in about["positions"]} == {0, 1, 2}:
                break
            assert time.monotonic() < deadline, about
            time.sleep(0.1)
        # a resume may name a new partition now
        back = gateway.client(token("alice"))
        assert receive(back)["type"] == "connected"
        subscribe(back, "job:job-0", [[topic, p, 0] for p in range(3)])
        replay = receive_until(back, lambda got: bool(got) and got[-1]["type"] == "subscribed")
        assert replay[-1]["recovered"] is True, replay[-1]
    finally:
        gateway.clients.close()
        assert gateway.stop() == 0
