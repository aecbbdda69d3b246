"""Two gateway processes at once, as behind a load balancer: each follows every partition, so a
client gets the same events with the same versions from either, and a client that reconnects to the
other one resumes from its last version with exactly the gap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.outboxkit.gateway.conftest import Gateway, StatusWriter, receive, receive_until, subscribe, token
from tests.outboxkit.gateway.test_resume import events, job_events, steps, subscribed


def version(message: dict[str, Any]) -> tuple[int, int]:
    return message["version"]["partition"], message["version"]["offset"]


def test_a_client_moved_to_another_gateway_resumes_with_exactly_the_gap(
    bootstrap_servers: str, writer: StatusWriter, tmp_path: Path
) -> None:
    first = Gateway(bootstrap_servers, writer.topic, tmp_path / "first.log").start()
    second = Gateway(bootstrap_servers, writer.topic, tmp_path / "second.log").start()
    try:
        on_first, on_second = first.client(token("alice")), second.client(token("alice"))
        for client in (on_first, on_second):
            assert receive(client)["type"] == "connected"
            subscribe(client, "user:alice")
            assert receive(client)["type"] == "subscribed"
        # jobs of two users spread over the three partitions; only alice's reach alice
        writer.write(
            *[e for job in "abcdef" for e in job_events(job, "alice", 1, 3)], *job_events("z", "bob", 1, 3)
        )
        seen_first = receive_until(on_first, lambda got: len(got) == 18)
        seen_second = receive_until(on_second, lambda got: len(got) == 18)
        # each partition in its order; how partitions interleave is each gateway's own
        assert sorted(map(version, seen_first)) == sorted(map(version, seen_second))
        for partition in range(3):
            assert [version(m) for m in seen_first if m["version"]["partition"] == partition] == sorted(
                version(m) for m in seen_first if m["version"]["partition"] == partition
            )
        assert {m["event"]["data"]["user_id"] for m in seen_first} == {"alice"}
        last = {}
        for message in seen_first:  # the newest version per partition: where the page stands
            at = message["version"]
            last[at["partition"]] = [at["topic"], at["partition"], at["offset"] + 1]
        on_first.close()

        # while the client is away: more events; then the balancer sends it to the other gateway
        landed = writer.write(
            *[e for job in "abcdef" for e in job_events(job, "alice", 4, 5)], *job_events("z", "bob", 4, 5)
        )
        second.wait_for_live(landed)
        moved = second.client(token("alice"))
        assert receive(moved)["type"] == "connected"
        subscribe(moved, "user:alice", list(last.values()))
        replay = receive_until(moved, subscribed)
        assert replay[-1]["recovered"] is True and replay[-1]["replayed"] == 12
        gap = events(replay)
        assert sorted(steps(gap)) == [4] * 6 + [5] * 6, "the gap, each event once"
        for job in "abcdef":  # in order per job
            assert [m["event"]["data"]["step"] for m in gap if m["event"]["data"]["job_id"] == job] == [4, 5]
        # the client that stayed on the second gateway saw the same 12 live, with the same versions
        stayed = receive_until(on_second, lambda got: len(got) == 12)
        assert sorted(map(version, stayed)) == sorted(map(version, gap))
    finally:
        for gateway in (first, second):
            gateway.clients.close()
            assert gateway.stop() == 0
