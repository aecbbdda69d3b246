"""Raw WebSocket clients against a real gateway: a connection receives only what its token grants."""

from __future__ import annotations

import time

import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from tests.outboxkit.gateway.conftest import Gateway, StatusWriter, receive, receive_until, subscribe, token


def closed_with(ws: object, timeout: float = 10.0) -> tuple[int | None, str]:
    """Read until the gateway closes; fails if an event arrived first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            frame = ws.recv(timeout=max(deadline - time.monotonic(), 0.1))  # type: ignore[attr-defined]
        except ConnectionClosed as closed:
            return (closed.rcvd.code if closed.rcvd else None), (closed.rcvd.reason if closed.rcvd else "")
        assert '"event"' not in frame, f"an event reached a refused connection: {frame}"


def test_forged_and_expired_tokens_are_refused_with_their_close_codes(gateway: Gateway) -> None:
    forged = jwt.encode(
        {"sub": "alice", "exp": time.time() + 600}, "another-secret-" + "y" * 32, algorithm="HS256"
    )
    assert closed_with(gateway.client(forged))[0] == 4001
    unsigned = jwt.encode({"sub": "alice", "exp": time.time() + 600}, None, algorithm="none")
    assert closed_with(gateway.client(unsigned))[0] == 4001
    code, reason = closed_with(gateway.client(token("alice", ttl=-5)))
    assert code == 4002 and "expired" in reason
    no_user = jwt.encode({"exp": time.time() + 600}, gateway_secret(), algorithm="HS256")
    assert closed_with(gateway.client(no_user))[0] == 4001
    silent = gateway.client(None)
    silent.send('{"type": "subscribe", "channel": "user:alice"}')  # before connect
    assert closed_with(silent)[0] == 4001


def gateway_secret() -> str:
    from tests.outboxkit.gateway.conftest import SECRET

    return SECRET


def test_a_connection_only_receives_its_own_users_channels(gateway: Gateway, writer: StatusWriter) -> None:
    alice = gateway.client(token("alice"))
    bob = gateway.client(token("bob"))
    assert receive(alice)["type"] == "connected" and receive(bob)["type"] == "connected"
    subscribe(bob, "user:alice")
    refused = receive(bob)
    assert refused["type"] == "error" and refused["code"] == "forbidden"
    subscribe(alice, "user:alice")
    subscribe(bob, "job:alice-job")  # allowed to ask, but alice's events are not bob's
    subscribe(bob, "user:bob")
    assert receive(alice)["type"] == "subscribed"
    assert [receive(bob)["type"] for _ in range(2)] == ["subscribed", "subscribed"]
    writer.write(*[("alice-job", "alice", {"done": i}) for i in range(5)])
    writer.write(("bob-job", "bob", {"done": 99}))
    got = receive_until(alice, lambda g: len(g) == 5)
    assert [m["event"]["data"]["done"] for m in got] == [0, 1, 2, 3, 4]
    assert {m["channel"] for m in got} == {"user:alice"}
    bobs = receive_until(bob, lambda g: len(g) == 1)  # bob's own event arrives, alice's never
    assert bobs[0]["event"]["data"] == {"user_id": "bob", "job_id": "bob-job", "done": 99}
    with pytest.raises(TimeoutError):
        bob.recv(timeout=1.5)


def test_a_token_expiring_during_the_connection_closes_it_unless_refreshed(gateway: Gateway) -> None:
    short = gateway.client(token("alice", ttl=2))
    refreshed = gateway.client(token("alice", ttl=2))
    assert receive(short)["type"] == "connected" and receive(refreshed)["type"] == "connected"
    refreshed.send(f'{{"type": "refresh", "token": "{token("alice", ttl=600)}"}}')
    assert receive(refreshed)["type"] == "refreshed"
    refreshed.send(f'{{"type": "refresh", "token": "{token("mallory", ttl=600)}"}}')
    assert receive(refreshed)["code"] == "other_user"
    assert closed_with(short, timeout=10)[0] == 4002
    with pytest.raises(TimeoutError):
        refreshed.recv(timeout=1.5)  # still open, quiet
