"""The writer of bench/kv_store.py's propagation figure, in a process of its own (as a service
that owns the data would be): `KVWriter.put()` paced at `--rate` puts/s for `--seconds`.

    .venv/bin/python -m bench.kv_paced_writer --topic T --rate 1000 --seconds 10 --prefix live

Each value is the wall-clock time of the put() call in ns (decimal text), padded to 100 bytes,
so the reader measures put() -> on_change from the value alone. Prints one JSON line: puts made,
seconds taken, and put() p50/p99 in ms (put() returns once the broker has acknowledged).
"""

from __future__ import annotations

import argparse
import json
import time

from outboxkit.kafka.settings import KafkaSettings
from outboxkit.kv import KVWriter

VALUE_BYTES = 100


def stamped_value() -> bytes:
    """The current time in ns as text, padded with spaces (the reader strips them)."""
    return str(time.time_ns()).encode().ljust(VALUE_BYTES)


def sent_at_ms(value: bytes) -> float:
    """The put() time a `stamped_value` carries, in ms."""
    return int(value) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic", required=True)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--prefix", default="live")
    args = parser.parse_args()
    with KVWriter(args.topic, kafka=KafkaSettings.load(), create=False) as writer:
        writer.put("warm-up", b"warm-up")  # connect, producer id: not timed
        total = int(args.rate * args.seconds)
        took_ms: list[float] = []
        started = time.perf_counter()
        for n in range(total):
            wait = started + n / args.rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            before = time.perf_counter()
            writer.put(f"{args.prefix}-{n}", stamped_value())
            took_ms.append((time.perf_counter() - before) * 1000)
        seconds = time.perf_counter() - started
    took_ms.sort()
    print(
        json.dumps(
            {
                "puts": total,
                "seconds": round(seconds, 3),
                "put_p50_ms": round(took_ms[len(took_ms) // 2], 3),
                "put_p99_ms": round(took_ms[int(len(took_ms) * 0.99)], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
