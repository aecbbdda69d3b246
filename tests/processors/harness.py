"""Processor instances as `outbox processor run tests.processors.target:from_environment` processes,
and the independent judge of their outputs: a read_committed read of the output topic."""

from __future__ import annotations

import heapq
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import sqlalchemy as sa
from confluent_kafka import Consumer, Message, TopicPartition
from sqlalchemy import Engine

from outboxkit.processors.lineage import CAUSATION_ID
from tests.consumers.workload import Applied, Effects, Version
from tests.processors import target
from tests.services import read_all

REPO = Path(__file__).resolve().parents[2]
REFERENCE = "tests.processors.target:from_environment"
STOP_SECONDS = 60


@dataclass
class ProcessorInstance:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def wait_up(self, timeout: float = 60) -> None:
        """Until it logged that it starts: its signal handlers are in place then."""
        deadline = time.monotonic() + timeout
        while b"processor starting" not in self.log.read_bytes():
            assert self.exited() is None, f"{self.name} exited with {self.exited()}: {self.tail()}"
            assert time.monotonic() < deadline, f"{self.name} did not start in {timeout} s"
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, and its exit with status 0 within STOP_SECONDS; one that hangs has every
        thread's stack written to its log (faulthandler, on SIGABRT) for the failure's message."""
        self.wait_up()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)
            self.process.wait(30)
            raise AssertionError(f"{self.name} did not stop in {STOP_SECONDS} s: {self.tail(8000)}") from None
        status = self.process.returncode
        assert status == 0, f"{self.name} exited with {status}: {self.tail()}"

    def exited(self) -> int | None:
        return self.process.poll()

    def tail(self, size: int = 3000, *, own: bool = False) -> str:
        """The log's last `size` characters; `own`: without librdkafka's lines (a broker away
        makes it write one every 50 ms, which would fill the tail)."""
        text = self.log.read_text(errors="replace")
        if own:
            text = "".join(line for line in text.splitlines(True) if '"logger":"librdkafka"' not in line)
        return text[-size:]


@dataclass
class Processes:
    """Starts instances of one test processor; `close` kills what still runs."""

    bootstrap: str
    env: dict[str, str]
    logs: Path
    database_url: str = ""
    instances: list[ProcessorInstance] = field(default_factory=list)
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def start(self, identity: str | None = None, *args: str) -> ProcessorInstance:
        name = f"{identity or 'instance'}.{next(self._numbers)}"
        log = self.logs / f"{self.env['PROCESSOR_NAME']}-{name}.log"
        environment = {
            **os.environ,
            "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "PYTHONPATH": str(REPO),
            "PYTHONFAULTHANDLER": "1",
            **({"OUTBOX_DATABASE_URL": self.database_url} if self.database_url else {}),
            **self.env,
            "PROCESSOR_INSTANCE": name,
        }
        command = [sys.executable, "-m", "outboxkit", "processor", "run", REFERENCE, *args]
        if identity is not None:
            command += ["--instance-id", identity]
        with log.open("ab") as stderr:
            process = subprocess.Popen(
                command, cwd=REPO, env=environment, stdout=subprocess.DEVNULL, stderr=stderr
            )
        instance = ProcessorInstance(name, process, log)
        self.instances.append(instance)
        return instance

    def close(self) -> None:
        for instance in self.instances:
            if instance.exited() is None:
                instance.kill()


def output_effects(bootstrap: str, topic: str) -> Effects:
    """Every committed output, in the output topic's order (a key's outputs share a partition),
    as the applications of the inputs named in their causation ids; `changed`: the output's
    `ce_id` is seen for the first time (an input handled again makes outputs with the same ids)."""
    applied, state, seen = [], {}, set()
    by_partition: dict[int, list[Message]] = {}
    for message in read_all(bootstrap, topic):
        by_partition.setdefault(message.partition() or 0, []).append(message)
    # Each partition in its order, the partitions merged by time: the order outputs were made in.
    records = heapq.merge(
        *(sorted(m, key=lambda r: r.offset() or 0) for m in by_partition.values()),
        key=lambda r: r.timestamp()[1],
    )
    for message in records:
        headers = {k: (v or b"").decode() for k, v in message.headers() or []}
        payload = orjson.loads(message.value() or b"{}")
        changed = headers["ce_id"] not in seen
        seen.add(headers["ce_id"])
        applied.append(
            Applied(
                headers[CAUSATION_ID],
                payload["key"],
                payload["seq"],
                payload["partition"],
                payload["offset"],
                payload["instance"],
                changed,
            )
        )
        state[payload["key"]] = Version(payload["seq"], payload["partition"], payload["offset"])
    return Effects(applied, state)


def committed_positions(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_committed"}
    )
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
    finally:
        consumer.close()
    return {f.partition: f.offset for f in found if f.offset >= 0}


class OpenTransactions:
    """Whether a transaction is open on a topic: its last stable offset is behind its end somewhere."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.topic, self.partitions = topic, partitions
        settings = {"bootstrap.servers": bootstrap, "group.id": "open-transactions"}
        self.committed = Consumer({**settings, "isolation.level": "read_committed"})
        self.uncommitted = Consumer({**settings, "isolation.level": "read_uncommitted"})

    def __call__(self) -> bool:
        for p in range(self.partitions):
            tp = TopicPartition(self.topic, p)
            _l, stable = self.committed.get_watermark_offsets(tp, timeout=10)
            _l, end = self.uncommitted.get_watermark_offsets(tp, timeout=10)
            if stable < end:
                return True
        return False

    def close(self) -> None:
        self.committed.close()
        self.uncommitted.close()


def processes(
    bootstrap: str, topic: str, output: str, dlq: str, name: str, logs: Path, **env: str
) -> Processes:
    base = {
        "PROCESSOR_NAME": name,
        "PROCESSOR_TOPIC": topic,
        "PROCESSOR_OUTPUT": output,
        "PROCESSOR_DLQ": dlq,
    }
    return Processes(bootstrap, {**base, **env}, logs)


def caught_up(bootstrap: str, name: str, topic: str, partitions: int) -> Callable[[], bool]:
    """Whether the group's committed positions reached the last stable offset of every partition
    (an idle processor commits its positions past the last commit marker)."""
    ends = stable_ends(bootstrap, topic, partitions)

    def check() -> bool:
        positions = committed_positions(bootstrap, f"outboxkit-processor-{name}", topic, partitions)
        return all(positions.get(p, 0) >= end for p, end in ends.items())

    return check


def stable_ends(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "ends", "isolation.level": "read_committed"}
    )
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


def working(instance: ProcessorInstance) -> Callable[[], bool]:
    """Whether the instance was given partitions (its log says so)."""
    return lambda: "assigned [((" in instance.tail(100_000)


def database_effects(engine: Engine, name: str) -> Effects:
    """Every application a mode-database test processor committed (its `processor_test_applied`
    rows, written in the transactions that moved its offsets), and the state they leave."""
    log = target.applied
    seen: set[str] = set()
    applied = []
    state = {}
    with engine.connect() as conn:
        query = sa.select(log).where(log.c.processor == name).order_by(log.c.id)
        for r in conn.execute(query):
            applied.append(
                Applied(r.event_id, r.key, r.seq, r.partition, r.offset, r.instance, r.event_id not in seen)
            )
            seen.add(r.event_id)
            state[r.key] = Version(r.seq, r.partition, r.offset)
    return Effects(applied, state)


def stored_positions(engine: Engine, name: str, topic: str) -> dict[int, int]:
    """Partition -> next offset, as a mode-database processor stored it (`processor_offsets`)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT partition, next_offset FROM processor_offsets WHERE processor = :p AND topic = :t"
            ),
            {"p": name, "t": topic},
        )
        return {int(p): int(n) for p, n in rows}
