"""Where a mode-kafka processor's end-to-end latency goes, stage by stage (docs/processors.md, "Latency").

    python bench/processor_latency_stages.py [--bootstrap-servers HOST:PORT] [--transaction-ms 100]
        [--seconds 10] [--rate 1000] [--no-freeze] [--reader-fetch-wait-ms 10]

Like `outbox processor run`, it freezes the objects alive before the processor's loop starts
(outboxkit.ops.collector); `--no-freeze` leaves the collector as it is.

The workload of `processor_throughput.py --parts latency` (one instance, the same transform, one
input producer made ready in a warm-up), on topics with `message.timestamp.type=LogAppendTime`, so
each record carries the broker's append time. Per output, five stages:

- sent -> input appended: the bench's input producer (its linger.ms, its batches);
- input appended -> handled: the processor's consumer and loop (the handler stamps its time);
- handled -> output appended: the transactional producer (linger.ms, adding the partition);
- output appended -> commit returned: the rest of the transaction and its commit (the commit
  calls are wrapped to take their return times);
- commit returned -> read: commit markers, the last stable offset, the read_committed reader.

Also: the commits' durations, and the cycle collector's pauses during the timed part (gc.callbacks),
which stop every thread of the process.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import os
import statistics
import threading
import time
import uuid
from typing import Any

import orjson
from confluent_kafka import Consumer
from processor_throughput import PARTITIONS, WARM_UP_SECONDS, produce, warmed_up

from outboxkit.kafka import clients, transactions
from outboxkit.kafka.admin import ensure_topic
from outboxkit.kafka.records import ReceivedEvent, decode_message
from outboxkit.ops.collector import freeze_alive_objects
from outboxkit.processors import Context, Processor, ProcessorConfig, kafka_mode
from outboxkit.processors.kafka_mode import KafkaProcessorRunner

TIMED = 10**7  # input numbers of the timed part start here
STAGES = ("sent -> in appended", "in appended -> handled", "handled -> out appended")
STAGES += ("out appended -> committed", "committed -> read", "total")


def topic(bootstrap: str, prefix: str) -> str:
    name = f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
    config = {"message.timestamp.type": "LogAppendTime"}
    ensure_topic(clients.admin(bootstrap), name, partitions=PARTITIONS, config=config)
    return name


class Commits:
    """Start and return times of every commit of the processor (wraps transactions.commit)."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []
        original = transactions.commit

        def commit(*args: Any, **kwargs: Any) -> None:
            began = time.time()
            original(*args, **kwargs)
            self.calls.append((began, time.time()))

        kafka_mode.transactions.commit = commit  # type: ignore[attr-defined]


class Collections:
    """The cycle collector's pauses: (when it ended, ms)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float]] = []
        self._began = 0.0
        gc.callbacks.append(self._seen)

    def _seen(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses.append((time.time(), (time.perf_counter() - self._began) * 1000))


def quantiles(values: list[float]) -> str:
    q = statistics.quantiles(values, n=100)
    return f"| {q[49]:>7.1f} | {q[89]:>7.1f} | {q[98]:>7.1f} | {max(values):>7.1f} |"


def input_appends(bootstrap: str, source: str, count: int) -> dict[int, float]:
    """Input number -> the broker's append time, read after the run (not to load the timed part)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([source])
    found: dict[int, float] = {}
    give_up = time.monotonic() + 60
    try:
        while len(found) < count and time.monotonic() < give_up:
            for message in consumer.consume(1000, 0.5):
                if message.error() is None:
                    found[decode_message(message).payload["n"]] = message.timestamp()[1] / 1000
    finally:
        consumer.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("OUTBOX_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--transaction-ms", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--no-freeze", action="store_true", help="no gc.freeze() before the loop")
    parser.add_argument("--reader-fetch-wait-ms", type=int, default=10)
    args = parser.parse_args()
    bootstrap, rate = args.bootstrap_servers, args.rate
    commits, collections = Commits(), Collections()
    source, output = topic(bootstrap, "stages-in"), topic(bootstrap, "stages-out")
    config = ProcessorConfig(transaction_ms=args.transaction_ms, transaction_records=100_000)
    processor = Processor(f"bench-{uuid.uuid4().hex[:8]}", [source], config=config)

    @processor.handles("bench.in")
    def handle(event: ReceivedEvent, context: Context) -> None:
        data = dict(event.payload)
        data["total"] = sum(data["items"])
        data["handled"] = time.time()
        context.emit("bench.out", data, aggregate_type="bench", topic=output)

    if not args.no_freeze:  # as `outbox processor run` does before its loop
        freeze_alive_objects()
    stop = threading.Event()
    runner = threading.Thread(
        target=KafkaProcessorRunner(processor, bootstrap).run, args=(stop,), daemon=True
    )
    runner.start()
    reader, feeder = warmed_up(bootstrap, source, output, rate, fetch_wait_ms=args.reader_fetch_wait_ms)
    total = int(rate * args.seconds)
    rows: list[tuple[int, float, float, float, float]] = []  # n, sent, handled, out appended, read
    began = time.time()
    feeding = threading.Thread(
        target=produce,
        args=(bootstrap, source, total),
        kwargs={"rate": rate, "start": TIMED, "producer": feeder},
    )
    feeding.start()
    deadline = time.monotonic() + args.seconds + 15
    while time.monotonic() < deadline and len(rows) < total:
        for message in reader.consume(500, 0) or reader.consume(1, 0.05):
            if message.error() is None:
                now, data = time.time(), orjson.loads(message.value() or b"{}")
                if data["n"] >= TIMED:
                    appended = message.timestamp()[1] / 1000
                    rows.append((data["n"], data["sent"], data["handled"], appended, now))
    feeding.join()
    ended = time.time()
    stop.set()
    runner.join(60)
    reader.close()

    appends = input_appends(bootstrap, source, total + int(WARM_UP_SECONDS * rate))
    returned = [r for _, r in commits.calls]
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    for n, sent, handled, out_appended, read in rows:
        in_appended = appends[n]
        # The commit that made the output visible: the first to return after its append
        # (append times are whole milliseconds).
        at = bisect.bisect_left(returned, out_appended - 0.001)
        committed = returned[at] if at < len(returned) else read
        for name, ms in zip(
            STAGES,
            (in_appended - sent, handled - in_appended, out_appended - handled),
            strict=False,
        ):
            stages[name].append(ms * 1000)
        stages["out appended -> committed"].append((committed - out_appended) * 1000)
        stages["committed -> read"].append((read - committed) * 1000)
        stages["total"].append((read - sent) * 1000)
    timed_commits = [(b, r) for b, r in commits.calls if began <= b <= ended]
    pauses = [ms for at, ms in collections.pauses if began <= at <= ended]
    print(
        f"\n{args.transaction_ms} ms transactions, {len(rows)} events at {rate:,.0f}/s,"
        f" frozen={not args.no_freeze}, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"| {'stage (ms)':<26} | {'p50':>7} | {'p90':>7} | {'p99':>7} | {'max':>7} |")
    print(f"|{'-' * 28}|{'-' * 8}:|{'-' * 8}:|{'-' * 8}:|{'-' * 8}:|")
    for name in STAGES:
        print(f"| {name:<26} {quantiles(stages[name])}")
    print(f"| {'commit call':<26} {quantiles([(r - b) * 1000 for b, r in timed_commits])}")
    tail = statistics.quantiles(stages["total"], n=100)[98]
    slow = [i for i, t in enumerate(stages["total"]) if t >= tail]
    means = ", ".join(f"{name} {statistics.mean(stages[name][i] for i in slow):.0f}" for name in STAGES[:-1])
    print(f"events at or over the p99 ({len(slow)}), mean ms per stage: {means}")
    print(
        f"cycle collections in the timed part: {len(pauses)}, longest {max(pauses, default=0):.1f} ms,"
        f" {sum(1 for ms in pauses if ms > 5)} over 5 ms"
    )


if __name__ == "__main__":
    main()
