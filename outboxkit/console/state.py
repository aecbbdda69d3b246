"""One thread polls the sources; every page reads the last snapshot and the recent history.

However many pages are open, the database and Kafka are asked once per interval.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from outboxkit.ops.status import JSON


@dataclass(frozen=True)
class Sample:
    """One point of the chart: the relay's backlog and each projector's and processor's lag."""

    at: float
    backlog: int | None
    lags: dict[str, int]

    def to_json(self) -> dict[str, JSON]:
        return {"at": self.at, "backlog": self.backlog, "lags": dict(self.lags)}


def sample_of(snapshot: dict[str, JSON]) -> Sample:
    relay = snapshot.get("relay")
    backlog = relay.get("backlog") if isinstance(relay, dict) else None
    lags = {}
    for kind in ("projectors", "processors"):
        parts = snapshot.get(kind)
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, dict):
                lag = part.get("total_lag")
                if isinstance(lag, int):
                    lags[str(part.get(kind[:-1]))] = lag
    at = snapshot["at"]
    return Sample(
        float(at) if isinstance(at, (int, float)) else 0.0,
        backlog if isinstance(backlog, int) else None,
        lags,
    )


class History:
    """The samples of the last `window` seconds. Thread-safe."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._samples: deque[Sample] = deque()
        self._lock = threading.Lock()

    def add(self, sample: Sample) -> None:
        with self._lock:
            self._samples.append(sample)
            while self._samples and self._samples[0].at < sample.at - self.window:
                self._samples.popleft()

    def to_json(self) -> list[JSON]:
        with self._lock:
            return [s.to_json() for s in self._samples]


class Poller:
    """Reads `read()` every `interval` seconds in a thread of its own; `latest` is the last snapshot
    with a sequence number that grows with each read (pages send what they have not sent yet)."""

    def __init__(self, read: Callable[[], dict[str, JSON]], interval: float, window: float = 900.0) -> None:
        self.read = read
        self.interval = interval
        self.history = History(window)
        self._stop = threading.Event()
        self._latest: tuple[int, dict[str, JSON]] | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="console-poller", daemon=True)

    def start(self) -> Poller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.poke()
        self._thread.join(timeout=30)

    def poke(self) -> None:
        """Read again now (after an action), not at the next interval."""
        with self._changed:
            self._changed.notify_all()

    @property
    def latest(self) -> tuple[int, dict[str, JSON]] | None:
        return self._latest

    def _run(self) -> None:
        seq = 0
        while not self._stop.is_set():
            snapshot = self.read()
            seq += 1
            self.history.add(sample_of(snapshot))
            self._latest = (seq, snapshot)
            with self._changed:
                self._changed.wait(self.interval)
