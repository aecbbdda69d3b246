"""The protocol's pure parts, without services: parsing client messages, tokens, routing."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import orjson
import pytest

from outbox.errors import ConfigurationError
from outboxkit.gateway.config import GatewayConfig
from outboxkit.gateway.protocol import ProtocolError, batched_frames, event_message, parse, subscribe_of
from outboxkit.gateway.routing import Routing
from outboxkit.gateway.tokens import Grant, TokenRefusedError, issue_token, verify_token
from outboxkit.kafka.records import ReceivedEvent

SECRET = "s" * 32


def event(subject: str, payload: object) -> ReceivedEvent:
    return ReceivedEvent(
        id=uuid.uuid4(),
        type="import.progress",
        source="t",
        time=datetime.now(UTC),
        subject=subject,
        content_type="application/json",
        data=orjson.dumps(payload),
        topic="jobs",
        key=subject,
        payload=payload,
        partition=2,
        offset=41,
    )


@pytest.mark.parametrize(
    ("frame", "says"),
    [
        ("not json", "JSON object"),
        ("[1, 2]", '"type"'),
        ('{"type": 3}', '"type"'),
    ],
)
def test_a_frame_that_is_not_a_message_is_refused_saying_why(frame: str, says: str) -> None:
    with pytest.raises(ProtocolError, match=says):
        parse(frame)


def test_subscribe_positions_are_topic_partition_next_offset() -> None:
    wanted = subscribe_of(
        {"type": "subscribe", "channel": "job:1", "since": [["jobs", 0, 5], ["jobs", 2, 0]]}
    )
    assert wanted.since == {("jobs", 0): 5, ("jobs", 2): 0}
    assert subscribe_of({"type": "subscribe", "channel": "job:1"}).since is None
    for since in ([["jobs", 0, -1]], [["jobs", True, 1]], [["jobs", 0]], "0", [[0, 0, 0]]):
        with pytest.raises(ProtocolError, match="since"):
            subscribe_of({"type": "subscribe", "channel": "job:1", "since": since})
    with pytest.raises(ProtocolError, match="channel"):
        subscribe_of({"type": "subscribe"})


def test_tokens_name_their_user_and_are_refused_when_forged_or_expired() -> None:
    grant = verify_token(SECRET, issue_token(SECRET, "alice", ttl=60, channels=["board:1"]))
    assert grant.user == "alice" and grant.channels == {"board:1"} and grant.expires_at > time.time()
    with pytest.raises(TokenRefusedError) as forged:
        verify_token(SECRET, issue_token("t" * 32, "alice"))
    assert not forged.value.expired
    with pytest.raises(TokenRefusedError) as expired:
        verify_token(SECRET, issue_token(SECRET, "alice", ttl=-1))
    assert expired.value.expired
    with pytest.raises(TokenRefusedError, match="no token"):
        verify_token(SECRET, None)


def test_an_event_is_on_its_users_and_its_subjects_channel_and_reaches_its_owner_only() -> None:
    routing = Routing()
    alice, bob = Grant("alice", time.time() + 60), Grant("bob", time.time() + 60, frozenset({"job:7"}))
    found = event("7", {"user_id": "alice", "imported": 5})
    assert routing.channels(found) == ["job:7", "user:alice"]
    assert routing.channels(event("8", {"imported": 5})) == ["job:8"]  # no owner
    assert routing.may_subscribe(alice, "user:alice") and not routing.may_subscribe(alice, "user:bob")
    assert routing.may_subscribe(alice, "job:7") and not routing.may_subscribe(alice, "board:1")
    assert Routing.may_receive(alice, "job:7", "alice") and not Routing.may_receive(alice, "job:7", "bob")
    assert Routing.may_receive(bob, "job:7", "alice")  # granted by name in bob's token


def test_a_pushed_message_is_channel_version_event() -> None:
    message = orjson.loads(event_message("job:7", event("7", {"user_id": "alice"})))
    assert message["type"] == "event" and message["channel"] == "job:7"
    assert message["version"] == {"topic": "jobs", "partition": 2, "offset": 41}
    assert message["event"]["data"] == {"user_id": "alice"} and message["event"]["subject"] == "7"


def test_settings_are_checked_when_made() -> None:
    with pytest.raises(ConfigurationError, match="32 bytes"):
        GatewayConfig(topics=("jobs",), secret="short")
    with pytest.raises(ConfigurationError, match="topic"):
        GatewayConfig(topics=(), secret=SECRET)
    with pytest.raises(ConfigurationError, match="queue_size"):
        GatewayConfig(topics=("jobs",), secret=SECRET, queue_size=0)


def test_queued_messages_make_frames_of_one_message_or_json_arrays_in_order_within_the_byte_limit() -> None:
    messages = [orjson.dumps({"type": "event", "n": n, "pad": "x" * 40}).decode() for n in range(10)]
    frames = list(batched_frames(messages, limit=200))
    unpacked = [m for f in frames for m in (orjson.loads(f) if f.startswith("[") else [orjson.loads(f)])]
    assert [m["n"] for m in unpacked] == list(range(10))
    assert all(len(f) <= 200 for f in frames if f.startswith("["))
    assert any(f.startswith("[") for f in frames), frames
    assert list(batched_frames(messages[:1], limit=200)) == messages[:1]  # one message: no array
    big = "x" * 500
    assert list(batched_frames([big, big], limit=200)) == [big, big]  # over the limit alone: alone
