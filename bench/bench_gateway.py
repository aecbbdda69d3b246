"""The WebSocket gateway on loopback: connections held, fan-out messages/s, produce -> receipt
latency at a steady event rate, and RSS per connection. Bounded in count and time.

    python bench/bench_gateway.py [--bootstrap-servers HOST:PORT] [--connections 1000]
        [--hold 5000] [--fanout-events 200] [--rate 1000] [--seconds 10]
        [--client-processes 3] [--gateway-arg=--OPTION ...]

Starts `outbox gateway run` as a child process on a fresh 3-partition topic (deleted at the end).
The clients run in `--client-processes` processes of their own (bench/gateway_clients.py), each
holding a share of the connections, so the gateway process's own work is what is measured. They
still share the machine's cores with the gateway and Kafka: besides messages/s, the table gives
the gateway process's CPU seconds per 1,000 messages delivered (from /proc), the figure that does
not depend on how busy the machine is, and the clients' CPU. Prints one table.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import multiprocessing.process
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from gateway_clients import Spec, serve

from outbox.envelope import encode, render_time

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


def gateway_cpu(pid: int) -> float:
    """utime + stime of a process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Clients:
    """`processes` client processes (bench/gateway_clients.py) sharing the connections of `users`."""

    def __init__(self, spec: Spec, processes: int, expect: list[int] | None = None, latency: bool = False):
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[multiprocessing.process.BaseProcess] = []
        shares = [spec.users[n::processes] for n in range(processes)]
        for n, users in enumerate(shares):
            mine, theirs = context.Pipe()
            share = Spec(**{**vars(spec), "users": users, "expect": expect[n] if expect else 0})
            proc = context.Process(target=serve, args=(share, theirs, latency), daemon=True)
            proc.start()
            self.pipes.append(mine)
            self.procs.append(proc)
        self.users_of = shares

    def ready(self, timeout: float = 120) -> int:
        opened = 0
        for pipe in self.pipes:
            if not pipe.poll(timeout):
                raise RuntimeError("a client process did not get ready")
            kind, count = pipe.recv()
            assert kind == "ready", kind
            opened += count
        return opened

    def results(self, stop: bool, timeout: float = 180) -> list[dict[str, Any]]:
        if stop:
            for pipe in self.pipes:
                pipe.send("stop")
        found = []
        for pipe in self.pipes:
            if not pipe.poll(timeout):
                raise RuntimeError("a client process did not report")
            kind, result = pipe.recv()
            assert kind == "done", kind
            found.append(result)
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send("stop")
        for proc in self.procs:
            proc.join(30)
        return found


def hold(spec: Spec, count: int, processes: int, pid: int) -> tuple[int, float, float]:
    """Connections opened (up to `count`); the gateway's RSS KiB each; seconds it took."""
    before, start = rss_kib(pid), time.monotonic()
    clients = Clients(Spec(**{**vars(spec), "users": [f"u{n}" for n in range(count)]}), processes)
    opened = clients.ready()
    took = time.monotonic() - start
    time.sleep(1)
    per = (rss_kib(pid) - before) / max(opened, 1)
    clients.results(stop=True)
    return opened, per, took


@dataclass
class Run:
    """One measured phase: messages delivered, over how long, and who spent how much CPU."""

    delivered: int
    frames: int
    seconds: float
    gateway_cpu: float
    client_cpu: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_per_1000(self) -> float:
        return self.gateway_cpu / self.delivered * 1000 if self.delivered else float("nan")


def measure(clients: Clients, pid: int, produce: Any, stop: bool) -> Run:
    clients.ready()
    cpu, start = gateway_cpu(pid), time.time()
    produce()
    results = clients.results(stop=stop)
    used = gateway_cpu(pid) - cpu
    last = max((r["last"] for r in results), default=start)
    return Run(
        sum(r["events"] for r in results),
        sum(r["frames"] for r in results),
        last - start,
        used,
        sum(r["cpu"] for r in results),
        sorted(x for r in results for x in r["latencies"]),
    )


def fanout(  # noqa: PLR0917 - a benchmark's steps, named at the call
    spec: Spec, pid: int, producer: Producer, topic: str, connections: int, events: int, processes: int
) -> Run:
    """Every client subscribed to one job channel (granted by name); `events` on it, produced at once."""
    users = [f"f{n}" for n in range(connections)]
    shares = [len(users[n::processes]) * events for n in range(processes)]
    hot = Spec(**{**vars(spec), "users": users, "channel": "job:hot", "grants": ("job:hot",)})
    clients = Clients(hot, processes, expect=shares)

    def produce() -> None:
        for n in range(events):
            key, value, headers = record(topic, "hot", "nobody", n=n)
            producer.produce(topic, key=key, value=value, headers=headers)
        producer.flush(30)

    return measure(clients, pid, produce, stop=False)


def latency(  # noqa: PLR0917 - a benchmark's steps, named at the call
    spec: Spec,
    pid: int,
    producer: Producer,
    topic: str,
    connections: int,
    rate: int,
    seconds: float,
    processes: int,
) -> Run:
    """One user per client; `rate` events/s for `seconds`, each to a random user."""
    users = [f"l{n}" for n in range(connections)]
    chance = random.Random(1)
    targets = [chance.randrange(connections) for _ in range(int(rate * seconds))]
    expect = [0] * processes
    for target in targets:
        expect[target % processes] += 1  # users[n::processes]: user n is in process n % processes
    mine = Spec(**{**vars(spec), "users": users, "channel": "user:{user}"})
    clients = Clients(mine, processes, expect, latency=True)

    def produce() -> None:
        start = time.monotonic()
        for n, target in enumerate(targets):
            user = users[target]
            key, value, headers = record(topic, f"job-{user}", user, sent=time.time())
            producer.produce(topic, key=key, value=value, headers=headers)
            producer.poll(0)
            pause = start + (n + 1) / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        producer.flush(30)

    return measure(clients, pid, produce, stop=False)


def cpu(run: Run) -> str:
    return (
        f"{run.gateway_cpu:.2f} s = {run.cpu_per_1000 * 1000:.1f} ms per 1,000 messages"
        f" (clients: {run.client_cpu:.2f} s)"
    )


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
    parser.add_argument("--client-processes", type=int, default=3)
    parser.add_argument("--no-batch", action="store_true", help="clients do not ask for batched frames")
    parser.add_argument(
        "--gateway-arg", action="append", default=[], help="an extra option for `outbox gateway run`"
    )
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
    command = [
        *("gateway", "run", "--topic", topic, "--port", str(port), "--metrics-port", str(metrics_port)),
        *("--queue-size", "10000", "--log-level", "WARNING", *args.gateway_arg),
    ]
    gateway = subprocess.Popen([sys.executable, "-m", "outboxkit", *command], env=env, cwd=REPO)
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap_servers,
            "enable.idempotence": True,
            "linger.ms": 2,
            "partitioner": "murmur2_random",
        }
    )
    spec = Spec(f"ws://127.0.0.1:{port}/ws", SECRET, [], "user:{user}", batch=not args.no_batch)
    load_before = os.getloadavg()
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(1)
        held, per_connection, hold_seconds = hold(spec, args.hold, args.client_processes, gateway.pid)
        fan = fanout(
            spec, gateway.pid, producer, topic, args.connections, args.fanout_events, args.client_processes
        )
        lat = latency(
            spec,
            gateway.pid,
            producer,
            topic,
            args.connections,
            args.rate,
            args.seconds,
            args.client_processes,
        )
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(30)
        admin.delete_topics([topic])[topic].result(30)
    load_after = os.getloadavg()
    latencies = lat.latencies

    def pct(q: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(int(len(latencies) * q), len(latencies) - 1)] * 1000

    procs = args.client_processes
    print(
        f"gateway options: {' '.join(args.gateway_arg) or '(defaults)'}; clients in {procs} processes,"
        f" {'one message per frame' if args.no_batch else 'batched frames'}"
    )
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)\n")
    print("| measure | value |\n|---|---|")
    print(f"| connections held (of {args.hold}) | {held} in {hold_seconds:.1f} s |")
    print(f"| gateway RSS per connection | {per_connection:.1f} KiB |")
    print(
        f"| fan-out: {args.connections} clients x {args.fanout_events} events |"
        f" {fan.rate:,.0f} messages/s ({fan.delivered} in {fan.frames} frames, {fan.seconds:.2f} s) |"
    )
    print(f"| fan-out: gateway CPU | {cpu(fan)} |")
    print(
        f"| produce -> receipt at {args.rate} events/s, {args.connections} clients, {args.seconds:.0f} s | "
        f"p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, max {pct(1.0):.1f} ms"
        f" ({len(latencies)} of {int(args.rate * args.seconds)}) |"
    )
    print(f"| latency run: gateway CPU | {cpu(lat)} |")


if __name__ == "__main__":
    main()
