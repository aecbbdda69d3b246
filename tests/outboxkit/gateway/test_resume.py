"""Resume by version against a real gateway and Kafka: the gap is replayed exactly, in order, also
by a gateway started after the gap was written; a gap beyond retention is answered as such."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import TopicPartition

from tests.outboxkit.gateway.conftest import Gateway, StatusWriter, receive, receive_until, subscribe, token
from tests.services import kafka_admin


def events(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == "event"]


def steps(messages: list[dict[str, Any]]) -> list[int]:
    return [m["event"]["data"]["step"] for m in events(messages)]


def subscribed(messages: list[dict[str, Any]]) -> bool:
    return bool(messages) and messages[-1]["type"] == "subscribed"


def job_events(job: str, user: str, first: int, last: int) -> list[tuple[str, str, dict[str, Any]]]:
    return [(job, user, {"step": step}) for step in range(first, last + 1)]


def test_resume_from_a_version_replays_exactly_the_gap_then_goes_live(
    gateway: Gateway, writer: StatusWriter
) -> None:
    watcher = gateway.client(token("alice"))
    assert receive(watcher)["type"] == "connected"
    subscribe(watcher, "job:a")
    assert receive(watcher)["type"] == "subscribed"
    writer.write(
        *job_events("a", "alice", 1, 4), *job_events("b", "alice", 1, 2), *job_events("c", "bob", 1, 3)
    )
    seen = receive_until(watcher, lambda got: len(got) == 4)
    assert steps(seen) == [1, 2, 3, 4]
    last = seen[-1]["version"]
    watcher.close()

    # the gap: more of job a, with other jobs' events between them on the same topic
    for step in range(5, 8):
        writer.write(
            ("a", "alice", {"step": step}), ("b", "alice", {"step": step}), ("c", "bob", {"step": step})
        )
    back = gateway.client(token("alice"))
    assert receive(back)["type"] == "connected"
    subscribe(back, "job:a", [[last["topic"], last["partition"], last["offset"] + 1]])
    replay = receive_until(back, subscribed)
    assert steps(replay) == [5, 6, 7]
    assert replay[-1] == {"type": "subscribed", "channel": "job:a", "recovered": True, "replayed": 3}
    versions = [m["version"]["offset"] for m in events(replay)]
    assert versions == sorted(versions) and versions[0] > last["offset"]
    writer.write(("a", "alice", {"step": 8}))
    assert steps(receive_until(back, lambda got: len(got) == 1)) == [8]


def test_a_gateway_started_after_the_gap_replays_it_on_every_partition(
    gateway: Gateway, writer: StatusWriter
) -> None:
    first = gateway.client(token("alice"))
    assert receive(first)["type"] == "connected"
    subscribe(first, "user:alice")
    reply = receive(first)
    positions = reply["positions"]  # where this gateway stands: everything below is history
    assert reply["recovered"] is False and len(positions) == 3
    writer.write(*job_events("a", "alice", 1, 2), *job_events("b", "alice", 1, 2))
    assert len(receive_until(first, lambda got: len(got) == 4)) == 4
    gateway.clients.close()
    assert gateway.stop() == 0

    jobs = [f"job-{n}" for n in range(16)]  # spread over the three partitions
    written = writer.write(
        *[(job, "alice", {"step": 1}) for job in jobs], *[(job, "bob", {"step": 1}) for job in jobs]
    )
    assert len({partition for partition, _ in written}) == 3
    gateway.start()  # a new process: its live stream starts at the end, after the gap
    gateway.wait_for_live(written)
    back = gateway.client(token("alice"))
    assert receive(back)["type"] == "connected"
    subscribe(back, "user:alice", positions)
    replay = receive_until(back, subscribed)
    assert replay[-1]["recovered"] is True and replay[-1]["replayed"] == 4 + len(jobs)
    got = [(m["event"]["data"]["job_id"], m["event"]["data"]["step"]) for m in events(replay)]
    assert sorted(got) == sorted([("a", 1), ("a", 2), ("b", 1), ("b", 2)] + [(job, 1) for job in jobs])
    assert len(set(got)) == len(got)
    for partition in {m["version"]["partition"] for m in events(replay)}:
        offsets = [m["version"]["offset"] for m in events(replay) if m["version"]["partition"] == partition]
        assert offsets == sorted(offsets)
    assert all(m["event"]["data"]["user_id"] == "alice" for m in events(replay))


def test_a_resume_beyond_retention_says_it_cannot_recover(
    gateway: Gateway, writer: StatusWriter, bootstrap_servers: str
) -> None:
    written = writer.write(*job_events("a", "alice", 1, 6))
    gateway.wait_for_live(written)
    partition = written[0][0]
    # what retention does to old segments, without waiting for it: the log now begins at step 4
    admin = kafka_admin(bootstrap_servers)
    cut = TopicPartition(writer.topic, partition, written[3][1])
    for future in admin.delete_records([cut]).values():
        future.result(timeout=30)
    client = gateway.client(token("alice"))
    assert receive(client)["type"] == "connected"
    subscribe(client, "job:a", [[writer.topic, partition, written[0][1] + 1]])
    answer = receive(client)
    assert answer["type"] == "subscribed" and answer["recovered"] is False
    assert "beyond retention" in answer["reason"] and "reload" in answer["reason"]
    # not subscribed: nothing arrives until the page subscribes again from the state it reloaded
    gateway.wait_for_live(writer.write(("a", "alice", {"step": 7})))
    with pytest.raises(TimeoutError):
        client.recv(timeout=1.5)
    subscribe(client, "job:a", [[writer.topic, partition, written[3][1]]])
    again = receive_until(client, lambda got: subscribed(got) and len(events(got)) == 4, timeout=20)
    assert steps(again) == [4, 5, 6, 7]
