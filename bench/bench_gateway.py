"""The WebSocket gateway on loopback: connections held, fan-out messages/s, produce -> receipt
latency at a steady event rate, and RSS per connection. Bounded in count and time.

    python bench/bench_gateway.py [--bootstrap-servers HOST:PORT] [--connections 1000]
        [--hold 5000] [--fanout-events 200] [--rate 1000] [--seconds 10]

Starts `outbox gateway run` as a child process on a fresh 3-partition topic (deleted at the end);
the clients are asyncio `websockets` clients in this process (they share the machine's cores with
the gateway and Kafka: the figures are a floor). Prints one table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from websockets.asyncio.client import ClientConnection, connect

from outbox.envelope import encode, render_time
from outboxkit.gateway import issue_token

SECRET = "bench-secret-" + "b" * 32
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def record(topic: str, job: str, user: str, **data: object) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    from datetime import UTC, datetime

    payload = orjson.dumps({"user_id": user, "job_id": job, **data})
    made = encode(
        str(uuid.uuid4()),
        "import.progress",
        "bench",
        render_time(datetime.now(UTC)),
        "import_job",
        job,
        topic,
        "application/json",
        payload,
        None,
        None,
    )
    return made.key, made.value, made.headers


async def client(url: str, user: str, channel: str, grants: tuple[str, ...] = ()) -> ClientConnection:
    ws = await connect(url, max_queue=None, ping_interval=None)
    await ws.send(
        orjson.dumps({"type": "connect", "token": issue_token(SECRET, user, channels=grants)}).decode()
    )
    assert orjson.loads(await ws.recv())["type"] == "connected"
    await ws.send(orjson.dumps({"type": "subscribe", "channel": channel}).decode())
    assert orjson.loads(await ws.recv())["type"] == "subscribed"
    return ws


async def hold(url: str, count: int, pid: int, budget: float) -> tuple[int, float, float]:
    """Connections opened within `budget` seconds (up to `count`); the gateway's RSS KiB each."""
    before = rss_kib(pid)
    clients: list[ClientConnection] = []
    deadline = time.monotonic() + budget
    while len(clients) < count and time.monotonic() < deadline:
        batch = min(200, count - len(clients))
        clients += await asyncio.gather(
            *[client(url, f"u{len(clients) + i}", f"user:u{len(clients) + i}") for i in range(batch)]
        )
    await asyncio.sleep(1)
    per = (rss_kib(pid) - before) / max(len(clients), 1)
    opened = len(clients)
    await asyncio.gather(*[ws.close() for ws in clients])
    return opened, per, time.monotonic() - (deadline - budget)


async def fanout(
    url: str, producer: Producer, topic: str, connections: int, events: int
) -> tuple[float, int]:
    """Every client subscribed to one job channel (granted by name); `events` on it."""
    clients = [await client(url, f"f{i}", "job:hot", ("job:hot",)) for i in range(connections)]
    got = [0] * connections

    async def read(n: int, ws: ClientConnection) -> None:
        while got[n] < events:
            await ws.recv()
            got[n] += 1

    readers = [asyncio.create_task(read(n, ws)) for n, ws in enumerate(clients)]
    start = time.monotonic()
    for n in range(events):
        key, value, headers = record(topic, "hot", "nobody", n=n)
        producer.produce(topic, key=key, value=value, headers=headers)
    producer.flush(30)
    await asyncio.wait_for(asyncio.gather(*readers), 120)
    elapsed = time.monotonic() - start
    await asyncio.gather(*[ws.close() for ws in clients])
    return sum(got) / elapsed, sum(got)


async def latency(  # noqa: PLR0917 - a benchmark's steps, named at the call
    url: str, producer: Producer, topic: str, connections: int, rate: int, seconds: float
) -> list[float]:
    clients = [await client(url, f"l{i}", f"user:l{i}") for i in range(connections)]
    latencies: list[float] = []
    total = int(rate * seconds)

    async def read(ws: ClientConnection) -> None:
        while True:
            message = orjson.loads(await ws.recv())
            latencies.append(time.time() - message["event"]["data"]["sent"])

    readers = [asyncio.create_task(read(ws)) for ws in clients]
    chance = random.Random(1)
    start = time.monotonic()
    for n in range(total):
        user = f"l{chance.randrange(connections)}"
        key, value, headers = record(topic, f"job-{user}", user, sent=time.time())
        producer.produce(topic, key=key, value=value, headers=headers)
        producer.poll(0)
        pause = start + (n + 1) / rate - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
    producer.flush(30)
    deadline = time.monotonic() + 30
    while len(latencies) < total and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    for task in readers:
        task.cancel()
    await asyncio.gather(*[ws.close() for ws in clients])
    return sorted(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("OUTBOX_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--hold", type=int, default=5000)
    parser.add_argument("--fanout-events", type=int, default=200)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    topic = f"bench-gateway-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap_servers})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": args.bootstrap_servers,
        "OUTBOX_GATEWAY_SECRET": SECRET,
    }
    gateway = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "outboxkit",
            "gateway",
            "run",
            "--topic",
            topic,
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            "--queue-size",
            "10000",
            "--log-level",
            "WARNING",
        ],
        env=env,
        cwd=REPO,
    )
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap_servers,
            "enable.idempotence": True,
            "linger.ms": 2,
            "partitioner": "murmur2_random",
        }
    )
    url = f"ws://127.0.0.1:{port}/ws"
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(1)
        held, per_connection, hold_seconds = asyncio.run(hold(url, args.hold, gateway.pid, 60))
        rate, delivered = asyncio.run(fanout(url, producer, topic, args.connections, args.fanout_events))
        lat = asyncio.run(latency(url, producer, topic, args.connections, args.rate, args.seconds))
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(30)
        admin.delete_topics([topic])[topic].result(30)
    pct = lambda q: lat[min(int(len(lat) * q), len(lat) - 1)] * 1000 if lat else float("nan")  # noqa: E731
    print("| measure | value |\n|---|---|")
    print(f"| connections held (opened within 60 s, of {args.hold}) | {held} in {hold_seconds:.1f} s |")
    print(f"| gateway RSS per connection | {per_connection:.1f} KiB |")
    print(
        f"| fan-out: {args.connections} clients x {args.fanout_events} events |"
        f" {rate:,.0f} messages/s ({delivered} delivered) |"
    )
    print(
        f"| produce -> receipt at {args.rate} events/s, {args.connections} clients, {args.seconds:.0f} s | "
        f"p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, max {pct(1.0):.1f} ms"
        f" ({len(lat)} of {int(args.rate * args.seconds)}) |"
    )


if __name__ == "__main__":
    main()
