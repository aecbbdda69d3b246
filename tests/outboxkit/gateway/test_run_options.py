"""`outbox gateway run`'s tuning flags (and their OUTBOX_GATEWAY_... variables) take effect."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tests.outboxkit.gateway.conftest import (
    REPO,
    Gateway,
    StatusWriter,
    receive,
    receive_until,
    subscribe,
    token,
)
from tests.services import broker_paused


def started(bootstrap_servers: str, writer: StatusWriter, tmp_path: Path, *extra: str, **env: str) -> Gateway:
    return Gateway(bootstrap_servers, writer.topic, tmp_path / "gateway.log", extra, env=env).start()


def test_connect_timeout_closes_a_silent_connection_sooner(
    bootstrap_servers: str, writer: StatusWriter, tmp_path: Path
) -> None:
    gateway = started(bootstrap_servers, writer, tmp_path, "--connect-timeout", "1")
    try:
        silent = gateway.client(None)
        began = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            silent.recv(timeout=8)  # the default, 10 s, would not close it within this
        assert time.monotonic() - began < 5
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        assert "within 1 s" in closed.value.rcvd.reason
    finally:
        gateway.clients.close()
        assert gateway.stop() == 0


def test_max_subscriptions_from_the_environment_bounds_the_channels_of_a_connection(
    bootstrap_servers: str, writer: StatusWriter, tmp_path: Path
) -> None:
    gateway = started(bootstrap_servers, writer, tmp_path, OUTBOX_GATEWAY_MAX_SUBSCRIPTIONS="2")
    try:
        client = gateway.client(token("alice"))
        assert receive(client)["type"] == "connected"
        for channel in ("user:alice", "job:1", "job:2"):
            subscribe(client, channel)
        answers = [receive(client) for _ in range(3)]
        assert [a["type"] for a in answers] == ["subscribed", "subscribed", "error"]
        assert answers[2]["code"] == "too_many" and "at most 2" in answers[2]["message"]
    finally:
        gateway.clients.close()
        assert gateway.stop() == 0


def test_the_config_files_gateway_table_sets_options_that_flags_and_variables_override(
    bootstrap_servers: str, writer: StatusWriter, tmp_path: Path
) -> None:
    config = tmp_path / "outbox.toml"
    config.write_text(
        f'[gateway]\ntopics = ["{writer.topic}"]\nconnect_timeout = 30.0\nmax_subscriptions = 1\n'
    )
    gateway = Gateway(
        bootstrap_servers,
        writer.topic,
        tmp_path / "gateway.log",
        ("--config", str(config), "--connect-timeout", "1"),
        env={"OUTBOX_GATEWAY_MAX_SUBSCRIPTIONS": "2"},
        topic_flag=False,
    ).start()
    try:
        client = gateway.client(token("alice"))
        assert receive(client)["type"] == "connected"
        for channel in ("user:alice", "job:1", "job:2"):  # the variable's 2, not the file's 1
            subscribe(client, channel)
        answers = [receive(client) for _ in range(3)]
        assert [a["type"] for a in answers] == ["subscribed", "subscribed", "error"]
        landed = writer.write(("1", "alice", {"step": 1}))  # the topic named in the file is followed
        assert receive(client)["version"]["offset"] == landed[0][1]
        silent = gateway.client(None)
        with pytest.raises(ConnectionClosed) as closed:
            silent.recv(timeout=8)
        assert closed.value.rcvd is not None and "within 1 s" in closed.value.rcvd.reason  # the flag's
    finally:
        gateway.clients.close()
        assert gateway.stop() == 0


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ("queue_sise = 5", "unknown keys in [gateway]: ['queue_sise']"),
        ("queue_size = 0", "queue_size = 0 is refused"),
        ('ping_interval = "soon"', "ping_interval = 'soon' is refused"),
    ],
)
def test_a_bad_gateway_table_is_refused_before_anything_starts(tmp_path: Path, table: str, said: str) -> None:
    config = tmp_path / "outbox.toml"
    config.write_text(f"[gateway]\n{table}\n")
    done = subprocess.run(
        [sys.executable, "-m", "outboxkit", "gateway", "run", "--config", str(config), "--topic", "t"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "OUTBOX_GATEWAY_SECRET": "s" * 32},
        timeout=30,
    )
    assert done.returncode == 1, done
    assert said in done.stderr and str(config) in done.stderr, done.stderr


def test_replay_timeout_bounds_how_long_a_resume_waits_for_kafka(
    bootstrap_servers: str, writer: StatusWriter, tmp_path: Path
) -> None:
    gateway = started(bootstrap_servers, writer, tmp_path, "--replay-timeout", "1")
    try:
        landed = writer.write(*[("a", "alice", {"step": step}) for step in range(3)])
        gateway.wait_for_live(landed)
        client = gateway.client(token("alice"))
        assert receive(client)["type"] == "connected"
        partition, offset = landed[0]
        with broker_paused():
            began = time.monotonic()
            subscribe(client, "job:a", [[writer.topic, partition, offset]])
            answer = receive(client, timeout=20)
            waited = time.monotonic() - began
        # the default (30 s) would keep the client waiting; the hard-coded 10 s of before, too
        assert waited < 6, f"answered after {waited:.1f} s"
        assert answer["type"] == "subscribed" and answer["recovered"] is False, answer
        subscribe(client, "job:a", [[writer.topic, partition, offset]])  # Kafka is back: it recovers
        got = receive_until(client, lambda got: bool(got) and got[-1]["type"] == "subscribed", timeout=40)
        assert got[-1] == {"type": "subscribed", "channel": "job:a", "recovered": True, "replayed": 3}
    finally:
        gateway.clients.close()
        assert gateway.stop() == 0


def test_compression_is_declined_unless_per_message_deflate_is_on(
    bootstrap_servers: str, writer: StatusWriter, tmp_path: Path
) -> None:
    plain = started(bootstrap_servers, writer, tmp_path)
    compressing = started(bootstrap_servers, writer, tmp_path, OUTBOX_GATEWAY_PER_MESSAGE_DEFLATE="true")
    try:
        # the websockets client offers permessage-deflate, as every browser does
        assert plain.client(None).ws.protocol.extensions == []
        assert [e.name for e in compressing.client(None).ws.protocol.extensions] == ["permessage-deflate"]
    finally:
        for gateway in (plain, compressing):
            gateway.clients.close()
            assert gateway.stop() == 0
