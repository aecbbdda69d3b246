"""Batched frames: a client that asks for them gets the messages that piled up as JSON arrays, in
order, none missing; a client that does not ask gets one message per frame, as before."""

from __future__ import annotations

import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from tests.outboxkit.gateway.conftest import Gateway, StatusWriter, receive, receive_until, subscribe, token

EVENTS = 300


def test_batched_frames_carry_every_message_in_order_and_only_for_clients_that_asked(
    gateway: Gateway, writer: StatusWriter
) -> None:
    batched = gateway.client(token("alice"))
    single = gateway.client(token("alice"), batch=False)
    for client in (batched, single):
        assert receive(client)["type"] == "connected"
        subscribe(client, "user:alice")
        assert receive(client)["type"] == "subscribed"
    writer.write(*[("job-1", "alice", {"n": n}) for n in range(EVENTS)])  # one transaction: one fetch
    got = receive_until(batched, lambda got: len(got) == EVENTS)
    assert [m["event"]["data"]["n"] for m in got] == list(range(EVENTS))
    assert max(batched.frames) > 1, f"no frame held more than one message: {batched.frames}"
    frames = [orjson.loads(single.ws.recv(timeout=10)) for _ in range(EVENTS)]
    assert all(isinstance(frame, dict) for frame in frames), "a client that did not ask got an array"
    assert [frame["event"]["data"]["n"] for frame in frames] == list(range(EVENTS))


def test_a_connect_whose_batch_is_not_a_boolean_is_refused(gateway: Gateway) -> None:
    client = gateway.client(None)
    client.send(orjson.dumps({"type": "connect", "token": token("alice"), "batch": "yes"}).decode())
    with pytest.raises(ConnectionClosed) as closed:
        client.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
