"""A KV reader on a disk store as its own process, to kill -9 (tests/outboxkit/kv/test_disk.py).

    python -m tests.outboxkit.kv.reader_process TOPIC PATH BOOTSTRAP [--slow SECONDS]

Prints one JSON line per loading step ({"covered", "total"}), {"ready": true} once loaded, then
{"positions": ...} after every change it applied while following. `--slow` sleeps that long after
each loading step, so a test can kill it in the middle of loading.
"""

from __future__ import annotations

import argparse
import sys
import time

import orjson

from outboxkit.kv import KVStore
from outboxkit.kv.stores.disk import DiskStore


def say(**fields: object) -> None:
    sys.stdout.write(orjson.dumps(fields, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("topic")
    parser.add_argument("path")
    parser.add_argument("bootstrap")
    parser.add_argument("--slow", type=float, default=0.0)
    args = parser.parse_args()

    def progress(covered: int, total: int) -> None:
        say(covered=covered, total=total)
        time.sleep(args.slow)

    store = KVStore(
        args.topic, kafka=args.bootstrap, store=DiskStore(args.path), batch_size=1000, on_progress=progress
    )
    store.on_change(lambda *_: None)
    store.start().wait_ready(120)
    say(ready=True, loaded_from=store.loaded_from)
    seen = store.positions
    while True:
        time.sleep(0.02)
        now = store.positions
        if now != seen:
            say(positions=now)
            seen = now


if __name__ == "__main__":
    main()
