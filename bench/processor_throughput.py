"""Exactly-once processors: throughput and latency of a 1 KB JSON transform (docs/processors.md).

    python bench/processor_throughput.py [--bootstrap-servers HOST:PORT] [--database-url URL]
        [--events 100000] [--rounds 2] [--latency-seconds 10] [--rate 1000] [--peer-python PYTHON]
        [--parts throughput,latency,database] [--no-freeze]

1. Throughput, one instance, events preloaded on a 3-partition topic, in alternating rounds
   (medians): at-least-once (the same handler and encoding, an idempotent producer, offsets
   committed every 100 ms after the outputs were flushed) against mode kafka with transactions
   of 10, 100 and 1,000 ms, and a floor (a bare exactly-once copy loop). Counted while the
   group's committed offsets go from 10 % to 90 % of the inputs (STEADY), the rate from start
   beside it. With
   `--peer-python` (a virtualenv with quixstreams), Quix Streams in exactly-once mode with 100 ms
   checkpoints runs the same transform in the same rounds (bench/processor_peer_quix.py).
2. End-to-end latency at `--rate` events/s: the input's send time (in the payload) to the moment
   a read_committed reader of the outputs receives it; p50 and p99 per transaction size.
3. Mode database (with `--database-url`): events/s of a handler that writes one row and publishes
   one outbox event per input, positions in the same PostgreSQL transaction.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from outbox import Event, Outbox, TopicRouter, migrations
from outboxkit.kafka import clients
from outboxkit.kafka.admin import ensure_topic
from outboxkit.kafka.records import ReceivedEvent
from outboxkit.ops.collector import freeze_alive_objects
from outboxkit.processors import Context, Processor, ProcessorConfig
from outboxkit.processors.database_mode import DatabaseProcessorRunner, engine_for
from outboxkit.processors.handling import InputHandler
from outboxkit.processors.kafka_mode import KafkaProcessorRunner

PARTITIONS = 3
PEER = "Quix Streams 100 ms"
FLOOR = "floor: bare copy, EOS 100 ms"
FILLER = "x" * 900  # with the other fields, a ~1 KB JSON payload


def new_topic(bootstrap: str, prefix: str) -> str:
    name = f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
    ensure_topic(clients.admin(bootstrap), name, partitions=PARTITIONS)
    return name


def payload(n: int) -> dict[str, Any]:
    return {"n": n, "sent": time.time(), "customer": f"c-{n % 977}", "items": [n, n + 1], "note": FILLER}


def input_producer(bootstrap: str) -> Producer:
    return clients.producer(bootstrap, {"linger.ms": 5})


WARM_UP_SECONDS = 2
"""Inputs sent at the benchmark's rate before the timed part (`warmed_up`)."""


def warmed_up(
    bootstrap: str, source: str, output: str, rate: int, *, fetch_wait_ms: int
) -> tuple[Consumer, Producer]:
    """A reader of `output` and the input producer, after WARM_UP_SECONDS of inputs at `rate` went through the
    running processor: its group has joined and the reader has its partitions (a reader that joins
    only when the timed part begins counts its own join as the processor's latency), and the
    producer has its metadata and producer id (a new one holds its first records until then)."""
    reader = clients.consumer(
        bootstrap, f"bench-reader-{uuid.uuid4().hex[:8]}", {"fetch.wait.max.ms": fetch_wait_ms}
    )
    reader.subscribe([output])
    warm_up = int(WARM_UP_SECONDS * rate)
    feeder = input_producer(bootstrap)
    warming = threading.Thread(
        target=produce, args=(bootstrap, source, warm_up), kwargs={"rate": rate, "producer": feeder}
    )
    warming.start()
    warmed, give_up = 0, time.monotonic() + 60
    while warmed < warm_up and time.monotonic() < give_up:
        warmed += sum(1 for m in reader.consume(500, 0.05) if m.error() is None)
    warming.join()
    return reader, feeder


def queued(producer: Producer, topic: str, key: Any, value: Any, headers: Any) -> None:
    """`producer.produce`, waiting for deliveries while its queue is full."""
    while True:
        try:
            producer.produce(topic, key=key, value=value, headers=headers)
            return
        except BufferError:
            producer.poll(0.05)


def produce(
    bootstrap: str,
    topic: str,
    count: int,
    *,
    rate: float | None = None,
    start: int = 0,
    producer: Producer | None = None,
) -> None:
    """`count` events on `topic`, at `rate` events/s if given. A timed part passes a `producer`
    that has already produced (to the same topic): a new one holds its first records until it
    has the topic's metadata and, being idempotent, its producer id, and those first records'
    send times (taken before) counted that set-up, up to 500 ms, as the processor's latency."""
    outbox = Outbox(router=TopicRouter(topic), source="bench")
    if producer is None:
        producer = input_producer(bootstrap)
        producer.list_topics(topic, timeout=30)
    began = time.monotonic()
    for n in range(start, start + count):
        if rate is not None:
            delay = began + (n - start) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        event = Event(
            type="bench.in", aggregate_type="bench", aggregate_id=f"k-{n % 500}", payload=payload(n)
        )
        record = outbox.record(event)
        queued(producer, record.topic, record.key, record.value, record.headers)
        producer.poll(0)
    producer.flush(60)


def transform(name: str, topic: str, output: str, **config: Any) -> Processor:
    processor = Processor(name, [topic], config=ProcessorConfig(**config))

    @processor.handles("bench.in")
    def handle(event: ReceivedEvent, context: Context) -> None:
        data = dict(event.payload)
        data["total"] = sum(data["items"])
        context.emit("bench.out", data, aggregate_type="bench", topic=output)

    return processor


class Committed:
    """The sum of group `group`'s committed offsets on `topic`, asked with one consumer (a new
    consumer each look cost the timed process CPU)."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        self.partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    def __call__(self) -> int:
        return sum(max(f.offset, 0) for f in self.consumer.committed(self.partitions, timeout=30))

    def close(self) -> None:
        self.consumer.close()


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) process `pid` has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ends(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-ends"})
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in range(PARTITIONS)
        )
    finally:
        consumer.close()


STEADY = (0.1, 0.9)
"""Throughput is counted while the committed inputs go from the first to the second share of
them: each scenario's start-up (the group join, init_transactions; Quix Streams' application),
up to a third of the peer's time at 30,000 events, and the last transaction's wait (up to its
size, once the inputs ran out) are left out. Committed offsets move at commits, so the window
should span many of them: 100,000 events give the 1,000 ms transactions about six."""


@dataclass
class Timing:
    """A run until all `total` inputs were committed: its seconds from start, and the steady part
    (between the STEADY shares of them committed): its inputs, seconds and CPU seconds."""

    total: int
    seconds: float
    steady_events: int
    steady_seconds: float
    steady_cpu: float

    @property
    def rate(self) -> float:
        return self.steady_events / self.steady_seconds

    @property
    def rate_from_start(self) -> float:
        return self.total / self.seconds

    @property
    def cpu_per_event_us(self) -> float:
        return self.steady_cpu / self.steady_events * 1e6


def watched(
    committed: Callable[[], int], total: int, cpu: Callable[[], float], alive: Callable[[], None]
) -> Timing:
    """Poll `committed` every 50 ms until it reaches `total` (`alive` raises when the run died)."""
    began, began_cpu = time.monotonic(), cpu()
    marks: list[tuple[float, float, int]] = []  # (time, CPU, committed) at the STEADY shares
    while True:
        done = committed()
        now = time.monotonic()
        if len(marks) < len(STEADY) and done >= total * STEADY[len(marks)]:
            marks.append((now, cpu(), done))
        if done >= total:
            break
        alive()
        time.sleep(0.05)
    (at, used, counted), (until, used_until, counted_until) = marks
    if counted_until == counted:  # one commit took both shares (a tiny run): the whole run
        at, used, counted = began, began_cpu, 0
    return Timing(total, now - began, counted_until - counted, until - at, used_until - used)


def timed(run: Callable[[threading.Event], None], committed: Callable[[], int], total: int) -> Timing:
    """`run` in a thread of this process until `committed()` reaches `total`; CPU is this process's
    (the run's thread and librdkafka's; the looks at `committed` are a few ms of it)."""
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(stop,), daemon=True)
    thread.start()
    timing = watched(committed, total, time.process_time, lambda: None)
    stop.set()
    thread.join(60)
    return timing


def at_least_once(bootstrap: str, processor: Processor, stop: threading.Event) -> None:
    """The baseline: the same handler and encoding, no transactions; offsets committed every
    100 ms once the outputs before them were acknowledged (at least once)."""
    handler = InputHandler(processor)
    outbox = Outbox(router=TopicRouter(), source=processor.name)
    consumer = clients.consumer(bootstrap, processor.group_id)
    producer = clients.producer(bootstrap)
    consumer.subscribe(list(processor.topics))
    last = time.monotonic()
    try:
        while not stop.is_set():
            for message in consumer.consume(500, 0.1):
                if message.error() is not None:
                    continue
                for output in handler.handle(message).outputs:
                    record = outbox.record(output)
                    queued(producer, record.topic, record.key, record.value, record.headers)
            if time.monotonic() - last > 0.1:
                producer.flush(30)
                at = [p for p in consumer.position(consumer.assignment()) if p.offset >= 0]
                if at:
                    consumer.commit(offsets=at, asynchronous=False)
                last = time.monotonic()
        producer.flush(30)
    finally:
        consumer.close()


def floor(bootstrap: str, output: str, processor: Processor, stop: threading.Event) -> None:
    """What Python and confluent-kafka alone reach on this machine: each input copied as it is
    (key, value and headers; no decode, no handler, no envelope) inside transactions of 100 ms
    with the input positions (KIP-447). Not a processor: the ceiling any would stand under."""
    consumer = clients.consumer(bootstrap, processor.group_id)
    producer = clients.transactional_producer(bootstrap, f"bench-floor-{uuid.uuid4().hex[:8]}")
    consumer.subscribe(list(processor.topics))
    opened: float | None = None
    try:
        while not stop.is_set():
            for message in consumer.consume(500, 0.1):
                if message.error() is not None:
                    continue
                if opened is None:
                    producer.begin_transaction()
                    opened = time.monotonic()
                queued(producer, output, message.key(), message.value(), message.headers())
            if opened is not None and time.monotonic() - opened >= 0.1:
                at = [p for p in consumer.position(consumer.assignment()) if p.offset >= 0]
                producer.send_offsets_to_transaction(at, consumer.consumer_group_metadata())
                producer.commit_transaction()
                opened = None
    finally:
        consumer.close()


def peer_timed(python: str, bootstrap: str, topics: tuple[str, str], group: str, total: int) -> Timing:
    """The Timing of Quix Streams (bench/processor_peer_quix.py, exactly-once, 100 ms checkpoints)
    from its application being made to its group's committed offsets at the end of `source`; CPU
    is its process's."""
    source, output = topics
    script = Path(__file__).with_name("processor_peer_quix.py")
    command = [python, str(script), "--input", source, "--output", output, "--group", group]
    peer = subprocess.Popen(
        [*command, "--bootstrap-servers", bootstrap, "--commit-interval", "0.1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert peer.stdout is not None
        if peer.stdout.readline().strip() != "started":
            raise RuntimeError("the Quix Streams peer did not start")
        committed = Committed(bootstrap, group, source)

        def alive() -> None:
            if peer.poll() is not None:
                raise RuntimeError(f"the Quix Streams peer exited with {peer.returncode}")

        try:
            return watched(committed, total, lambda: process_cpu(peer.pid), alive)
        finally:
            committed.close()
    finally:
        peer.terminate()
        peer.wait(60)


def throughput(bootstrap: str, events: int, rounds: int, peer_python: str | None = None) -> None:
    source = new_topic(bootstrap, "in")
    produce(bootstrap, source, events)
    total = ends(bootstrap, source)
    timings: dict[str, list[Timing]] = {}
    for _ in range(rounds):
        for label, size in [
            ("at-least-once", None),
            (FLOOR, 100),
            ("exactly-once 10 ms", 10),
            ("exactly-once 100 ms", 100),
            ("exactly-once 1000 ms", 1000),
            *([(PEER, 100)] if peer_python else []),
        ]:
            output = new_topic(bootstrap, "out")
            name = f"bench-{uuid.uuid4().hex[:8]}"
            if label == PEER:
                assert peer_python is not None
                group = f"outboxkit-processor-{name}"
                timings.setdefault(label, []).append(
                    peer_timed(peer_python, bootstrap, (source, output), group, total)
                )
                continue
            if label == FLOOR:
                processor = transform(name, source, output)
                run: Callable[[threading.Event], None] = functools.partial(
                    floor, bootstrap, output, processor
                )
            elif size is None:
                processor = transform(name, source, output)
                run = functools.partial(at_least_once, bootstrap, processor)
            else:
                processor = transform(name, source, output, transaction_ms=size, transaction_records=100_000)
                run = KafkaProcessorRunner(processor, bootstrap).run
            committed = Committed(bootstrap, processor.group_id, source)
            try:
                timings.setdefault(label, []).append(timed(run, committed, total))
            finally:
                committed.close()

    def median(label: str, figure: Callable[[Timing], float]) -> float:
        return statistics.median(figure(t) for t in timings[label])

    def rate(t: Timing) -> float:
        return t.rate

    def cpu(t: Timing) -> float:
        return t.cpu_per_event_us

    base = median("at-least-once", rate)
    print(
        f"\nthroughput, {events} events of ~1 KB, one instance, {rounds} alternating rounds (medians);"
        f" events/s and CPU while {STEADY[0]:.0%} to {STEADY[1]:.0%} of the inputs were committed"
    )
    print(
        f"| {'scenario':<30} | {'events/s':>9} | {'rounds min-max':>15} | {'vs at-least-once':>16} |"
        f" {'CPU µs/event':>12} | {'events/s from start':>19} |"
    )
    print(f"|{'-' * 32}|{'-' * 10}:|{'-' * 16}:|{'-' * 17}:|{'-' * 13}:|{'-' * 20}:|")
    for label, runs in timings.items():
        steady = median(label, rate)
        start = median(label, lambda t: t.rate_from_start)
        rates = [t.rate for t in runs]
        spread = f"{min(rates):,.0f}-{max(rates):,.0f}"
        print(
            f"| {label:<30} | {steady:>9,.0f} | {spread:>15} | {steady / base:>15.2f}x |"
            f" {median(label, cpu):>12.1f} | {start:>19,.0f} |"
        )
    # Each round runs the scenarios back to back: a ratio within one round leaves out the
    # VM's drift between rounds.
    paired = zip(timings["exactly-once 100 ms"], timings["at-least-once"], strict=True)
    print(
        "exactly-once 100 ms / at-least-once, round by round: "
        + ", ".join(f"{eos.rate / alo.rate:.2f}" for eos, alo in paired)
    )
    if PEER in timings:
        ours = median("exactly-once 100 ms", rate) / median(PEER, rate)
        share = median(PEER, cpu) / median("exactly-once 100 ms", cpu)
        print(
            f"exactly-once at 100 ms against {PEER}: {ours:.2f}x its events/s;"
            f" {PEER} uses {share:.2f}x our CPU per event"
        )


def latency(bootstrap: str, seconds: float, rate: float, *, freeze_objects: bool = True) -> None:
    print(
        f"\nend-to-end latency at {rate:,.0f} events/s for {seconds:.0f} s"
        " (send time to a read_committed read)"
    )
    print(f"| {'transaction':<12} | {'p50 ms':>8} | {'p99 ms':>8} | {'events':>7} |")
    print(f"|{'-' * 14}|{'-' * 9}:|{'-' * 9}:|{'-' * 8}:|")
    for size in (10, 100, 1000):
        source, output = new_topic(bootstrap, "lat-in"), new_topic(bootstrap, "lat-out")
        processor = transform(
            f"bench-{uuid.uuid4().hex[:8]}",
            source,
            output,
            transaction_ms=size,
            transaction_records=100_000,
        )
        if freeze_objects:  # as `outbox processor run` does before its loop (outboxkit.ops.collector)
            freeze_alive_objects()
        stop = threading.Event()
        runner = threading.Thread(
            target=KafkaProcessorRunner(processor, bootstrap).run, args=(stop,), daemon=True
        )
        runner.start()
        # A short fetch wait, so the reader's own long poll is not counted as the processor's latency.
        reader, feeder = warmed_up(bootstrap, source, output, rate, fetch_wait_ms=10)
        delays: list[float] = []
        feeding = threading.Thread(
            target=produce,
            args=(bootstrap, source, int(rate * seconds)),
            kwargs={"rate": rate, "start": 10**7, "producer": feeder},
        )
        feeding.start()
        deadline = time.monotonic() + seconds + 15
        while time.monotonic() < deadline and len(delays) < int(rate * seconds):
            # What is there now, else the first record within 50 ms: never wait to fill a batch.
            for message in reader.consume(500, 0) or reader.consume(1, 0.05):
                if message.error() is None:
                    data = orjson.loads(message.value() or b"{}")
                    if data["n"] >= 10**7:
                        delays.append((time.time() - data["sent"]) * 1000)
        feeding.join()
        stop.set()
        runner.join(60)
        reader.close()
        q = statistics.quantiles(delays, n=100)
        print(f"| {size:>9} ms | {q[49]:>8.1f} | {q[98]:>8.1f} | {len(delays):>7} |")


def database_mode(bootstrap: str, database_url: str, events: int, *, writes: bool = True) -> None:
    import sqlalchemy as sa

    migrations.upgrade(database_url)
    engine = engine_for(database_url)
    table = sa.Table(
        "bench_processor_rows",
        sa.MetaData(),
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("total", sa.BigInteger),
    )
    table.metadata.create_all(engine)
    source = new_topic(bootstrap, "db-in")
    produce(bootstrap, source, events)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    processor = Processor(
        name,
        [source],
        mode="database",
        config=ProcessorConfig(transaction_records=500, output_topic="bench.{aggregate_type}"),
    )

    @processor.handles("bench.in")
    def handle(event: ReceivedEvent, context: Context) -> None:
        assert context.connection is not None
        data = event.payload
        if writes:  # one round trip per event: on this machine it is most of the cost
            context.connection.execute(
                table.insert().values(id=f"{name}-{data['n']}", total=sum(data["items"]))
            )
        context.emit("bench.out", {"n": data["n"]}, aggregate_type="bench")

    def committed() -> int:
        with engine.connect() as conn:
            stored = conn.scalar(
                sa.text("SELECT coalesce(sum(next_offset), 0) FROM processor_offsets WHERE processor = :p"),
                {"p": name},
            )
        return int(stored or 0)

    timing = timed(DatabaseProcessorRunner(processor, engine, bootstrap).run, committed, events)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM outbox_events WHERE ce_source = :p"), {"p": name})
        conn.execute(table.delete())
    engine.dispose()
    what = "one row + one outbox event each" if writes else "one outbox event each, no row of its own"
    print(
        f"\nmode database: {events} events ({what}, 500 per transaction): {timing.rate:,.0f} events/s,"
        f" {timing.cpu_per_event_us:.0f} µs CPU an event (this process; PostgreSQL's not counted)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("OUTBOX_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--database-url", default=os.environ.get("OUTBOX_DATABASE_URL"))
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency-seconds", type=float, default=10)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--parts", default="throughput,latency,database", help="Which parts to run.")
    parser.add_argument(
        "--no-freeze",
        action="store_true",
        help="latency: no gc.freeze() before the loop, which `outbox processor run` does",
    )
    parser.add_argument(
        "--peer-python",
        help="Python of a virtualenv with quixstreams: also time bench/processor_peer_quix.py (exactly-once)",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if "throughput" in parts:
        throughput(args.bootstrap_servers, args.events, args.rounds, args.peer_python)
    if "latency" in parts:
        latency(args.bootstrap_servers, args.latency_seconds, args.rate, freeze_objects=not args.no_freeze)
    if args.database_url and "database" in parts:
        database_mode(args.bootstrap_servers, args.database_url, args.events, writes=False)
        database_mode(args.bootstrap_servers, args.database_url, args.events)


if __name__ == "__main__":
    main()
