"""Fixtures of the processors' tests: a flowing input feed and processor processes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.consumers.workload import Feed


@contextmanager
def flowing(feed: Feed, per_second: int) -> Iterator[None]:
    """Feed `per_second` events a second in a thread for the duration of the block."""
    running = threading.Event()
    running.set()

    def produce() -> None:
        while running.is_set():
            feed.send(feed.numbered(per_second // 4))
            time.sleep(0.25)

    thread = threading.Thread(target=produce)
    thread.start()
    try:
        yield
    finally:
        running.clear()
        thread.join(60)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)
