"""Exactly-once processors: the Python CPU of the per-event path, in process (docs/processors.md).

    python bench/processor_cpu.py [--bootstrap-servers HOST:PORT] [--events 20000] [--rounds 5]
        [--profile]

The records of bench/processor_throughput.py (1 KB JSON inputs in the outbox envelope) are made
as confluent-kafka Message objects, then run through the pieces of mode kafka's loop, each timed
with the calling thread's CPU clock (librdkafka's threads are not counted), best of `--rounds`:

- decode: outboxkit.kafka.records.decode_message;
- handle: InputHandler.handle (decode, the handler, lineage of its output);
- encode: Outbox.record of each output (checks and the Kafka record);
- send: KafkaProcessorRunner._send of each outcome (encode, produce, metrics), into an idempotent
  producer on the given broker (its queue is flushed between rounds, outside the timing);
- input: handle + send, what one input costs the loop's thread.

`--profile` prints cProfile's top functions of the `input` loop. The figure to compare with the
throughput bench's CPU µs/event is `input` plus librdkafka's share (consume, produce, transactions).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import Message
from processor_throughput import PARTITIONS, new_topic, payload, transform

from outbox import Event, Outbox, TopicRouter
from outboxkit.kafka import clients
from outboxkit.kafka.records import decode_message
from outboxkit.processors.handling import InputHandler, Outcome
from outboxkit.processors.kafka_mode import KafkaProcessorRunner


def records(count: int, topic: str) -> list[Message]:
    """`count` input records as the throughput bench produces them, as a consumer hands them over."""
    outbox = Outbox(router=TopicRouter(topic), source="bench")
    made = []
    for n in range(count):
        event = Event(
            type="bench.in", aggregate_type="bench", aggregate_id=f"k-{n % 500}", payload=payload(n)
        )
        record = outbox.record(event)
        made.append(
            Message(
                topic=record.topic,
                partition=n % PARTITIONS,
                offset=n // PARTITIONS,
                key=record.key,
                value=record.value,
                headers=record.headers,
            )
        )
    return made


def best(rounds: int, count: int, run: Callable[[], Any], between: Callable[[], None] | None = None) -> float:
    """The least thread CPU µs per item of `rounds` calls of `run` (which handles `count` items)."""
    spent = []
    for _ in range(rounds):
        began = time.thread_time()
        run()
        spent.append(time.thread_time() - began)
        if between is not None:
            between()
    return min(spent) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("OUTBOX_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile the input loop once")
    args = parser.parse_args()
    name = f"bench-cpu-{uuid.uuid4().hex[:8]}"
    output = new_topic(args.bootstrap_servers, "cpu-out")
    processor = transform(name, f"{name}-in", output)
    messages = records(args.events, f"{name}-in")
    handler = InputHandler(processor)
    runner = KafkaProcessorRunner(processor, args.bootstrap_servers)
    producer = clients.producer(args.bootstrap_servers)
    outcomes: list[Outcome] = [handler.handle(m) for m in messages]
    outputs: Sequence[Event] = [o for outcome in outcomes for o in outcome.outputs]
    assert len(outputs) == len(messages), "every input has one output"

    def send_all() -> None:
        for message, outcome in zip(messages, outcomes, strict=True):
            runner._send(producer, message, outcome)

    def inputs() -> None:
        for message in messages:
            runner._send(producer, message, handler.handle(message))

    def drain() -> None:
        producer.flush(60)

    def each(function: Callable[[Any], object], items: Sequence[Any]) -> Callable[[], None]:
        def run() -> None:
            for item in items:  # nothing kept, as in the loop: what is kept makes the GC's work grow
                function(item)

        return run

    # What was made before the timing is left out of the collector's passes (as a long-running
    # processor's modules and settings are, mostly).
    gc.collect()
    gc.freeze()
    n = len(messages)
    figures = {
        "decode": best(args.rounds, n, each(decode_message, messages)),
        "handle": best(args.rounds, n, each(handler.handle, messages)),
        "encode": best(args.rounds, n, each(runner.outbox.record, outputs)),
        "send": best(args.rounds, n, send_all, drain),
        "input": best(args.rounds, n, inputs, drain),
    }
    print(f"\nper-event CPU of the loop's thread, {n} records of ~1 KB, best of {args.rounds} (µs)")
    print(f"| {'piece':<8} | {'µs/event':>9} |")
    print(f"|{'-' * 10}|{'-' * 10}:|")
    for label, value in figures.items():
        print(f"| {label:<8} | {value:>9.1f} |")
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(inputs)
        drain()
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    producer.flush(60)


if __name__ == "__main__":
    main()
