"""The consumer conformance suite's input and its judge.

Input: numbered events per key (`seq` 0, 1, 2 ... of each key) in the toolkit's envelope, made by
the write side's own encoder (`Outbox.prepare`, `to_kafka`) and produced straight to Kafka with
the relays' partitioner. A `Feed` writes them plainly, again (republished: the same `ce_id` at a
new offset, as an at-least-once relay does after a crash), in Kafka transactions of which some are
aborted, and as poison (a record that cannot be decoded, or an event its handler always fails on).

Judge: `read_expected` reads the topic independently (read_committed, to the end of every
partition) and derives what a component had to do: apply each committed event once (the first
copy of each `ce_id`), in the order of its key, ending in the last event of each key. `tally`
compares that with what the component says it did (`Effects`) and counts what was lost,
duplicated, reordered, applied though never committed, and the keys whose final state is wrong.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Message, Producer

from outbox import Event, Outbox, TopicRouter
from outbox.envelope import CE_ID, KafkaRecord, to_kafka
from tests.services import read_all

EVENT_TYPE = "conformance.numbered"
AGGREGATE_TYPE = "conformance"


@dataclass(frozen=True, order=True)
class Version:
    """A key's state: the last event applied to it (its `seq`) and that record's place in Kafka."""

    seq: int
    partition: int
    offset: int


@dataclass(frozen=True)
class Applied:
    """One application of one event that the component committed, as it reports it."""

    event_id: str
    key: str
    seq: int
    partition: int
    offset: int
    instance: str
    """Which instance applied it (the rebalance case checks the work was shared)."""
    changed: bool = True
    """Whether it changed the component's state (a guarded replay calls handlers that change nothing)."""


@dataclass(frozen=True)
class Effects:
    """What a component did: every committed application in the order it made them, and its state."""

    applied: Sequence[Applied]
    state: Mapping[str, Version]


@dataclass(frozen=True)
class InputRecord:
    """One record of the input topic as the independent read found it."""

    partition: int
    offset: int
    key: str
    headers: tuple[tuple[str, bytes], ...]
    value: bytes
    event_id: str | None
    """`ce_id`, None when the record has none."""
    seq: int | None
    """The event's number within its key, None for a record that is not a numbered event."""
    poison: bool
    """Undecodable, or an event whose handler always fails: to be dead-lettered, never applied."""


def classify(msg: Message) -> InputRecord:
    headers = tuple((k, v or b"") for k, v in msg.headers() or [])
    event_id = next((v.decode() for k, v in headers if k == CE_ID), None)
    value = msg.value() or b""
    seq: int | None = None
    poison = True
    try:
        payload: Any = orjson.loads(value)
    except orjson.JSONDecodeError:
        payload = None
    if event_id is not None and isinstance(payload, dict) and "seq" in payload:
        seq = int(payload["seq"])
        poison = bool(payload.get("fail"))
    return InputRecord(
        msg.partition() or 0,
        msg.offset() or 0,
        (msg.key() or b"").decode(),
        headers,
        value,
        event_id,
        seq,
        poison,
    )


def event_id(record: KafkaRecord) -> str:
    return dict(record.headers)[CE_ID].decode()


@dataclass(frozen=True)
class Expected:
    """What the topic holds (read_committed), and what a component had to make of it."""

    records: Sequence[InputRecord]
    """Every record, in (partition, offset) order."""

    @property
    def events(self) -> dict[str, InputRecord]:
        """Event id -> its first copy, for every event to apply (republished copies and poison left out)."""
        first: dict[str, InputRecord] = {}
        for record in self.records:
            if not record.poison and record.event_id is not None:
                first.setdefault(record.event_id, record)
        return first

    @property
    def order(self) -> dict[str, list[str]]:
        """Key -> its events' ids in the order they must be applied (its partition's offset order)."""
        order: dict[str, list[str]] = defaultdict(list)
        for event_id, record in self.events.items():
            order[record.key].append(event_id)
        return dict(order)

    @property
    def state(self) -> dict[str, Version]:
        """Key -> the version its last event leaves it at."""
        return {
            record.key: Version(record.seq or 0, record.partition, record.offset)
            for record in self.events.values()
        }

    @property
    def ends(self) -> dict[int, int]:
        """Partition -> the offset after its last record: a component that handled every record
        stands at least there (records skipped, poison and republished copies included)."""
        ends: dict[int, int] = {}
        for record in self.records:
            ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
        return ends

    @property
    def poison(self) -> list[InputRecord]:
        return [r for r in self.records if r.poison]


def read_expected(bootstrap: str, topic: str, *, isolation: str = "read_committed") -> Expected:
    """The topic read to the end of every partition, independently of the component under test."""
    records = [classify(m) for m in read_all(bootstrap, topic, isolation=isolation)]
    return Expected(sorted(records, key=lambda r: (r.partition, r.offset)))


@dataclass(frozen=True)
class Tally:
    """The differences between what a component did and what the topic asked of it."""

    lost: Sequence[str] = ()
    """Events never applied."""
    duplicated: Mapping[str, int] = field(default_factory=dict)
    """Event id -> applications beyond the first."""
    reordered: Sequence[str] = ()
    """Events applied for the first time after a later event of their key."""
    unexpected: Sequence[str] = ()
    """Applied, but not an event to apply: aborted, poison, or never on the topic."""
    wrong_state: Mapping[str, tuple[Version | None, Version | None]] = field(default_factory=dict)
    """Key -> (expected, found)."""

    def counts(self) -> dict[str, int]:
        return {
            "lost": len(self.lost),
            "duplicated": sum(self.duplicated.values()),
            "reordered": len(self.reordered),
            "unexpected": len(self.unexpected),
            "wrong state": len(self.wrong_state),
        }

    def __str__(self) -> str:
        examples = {
            "lost": list(self.lost[:5]),
            "duplicated": list(self.duplicated.items())[:5],
            "reordered": list(self.reordered[:5]),
            "unexpected": list(self.unexpected[:5]),
            "wrong state": list(self.wrong_state.items())[:5],
        }
        return "; ".join(f"{k} {n} (e.g. {examples[k]})" for k, n in self.counts().items() if n)


CLEAN = {"lost": 0, "duplicated": 0, "reordered": 0, "unexpected": 0, "wrong state": 0}


def tally(expected: Expected, effects: Effects, *, changes_only: bool = False) -> Tally:
    """Count what `effects` lost, duplicated, reordered or invented against `expected`.

    `changes_only` judges only the applications that changed the state: a component that replays
    from offset 0 calls its handlers again, and only their effect has to be nil.
    """
    events = expected.events
    applied = [a for a in effects.applied if a.changed or not changes_only]
    times = Counter(a.event_id for a in applied)
    unexpected = [a.event_id for a in applied if a.event_id not in events]
    reordered: list[str] = []
    position = {eid: i for ids in expected.order.values() for i, eid in enumerate(ids)}
    newest: dict[str, int] = {}  # key -> position of the latest event of the key applied so far
    seen: set[str] = set()
    for a in applied:
        if a.event_id not in events or a.event_id in seen:
            continue
        seen.add(a.event_id)
        if position[a.event_id] < newest.get(a.key, -1):
            reordered.append(a.event_id)
        newest[a.key] = max(newest.get(a.key, -1), position[a.event_id])
    want, found = expected.state, effects.state
    return Tally(
        lost=[eid for eid in events if eid not in times],
        duplicated={eid: n - 1 for eid, n in times.items() if n > 1 and eid in events},
        reordered=reordered,
        unexpected=unexpected,
        wrong_state={
            k: (want.get(k), found.get(k)) for k in want.keys() | found.keys() if want.get(k) != found.get(k)
        },
    )


class Feed:
    """Writes the suite's input to one topic and remembers every record it produced. One thread
    at a time."""

    def __init__(self, bootstrap: str, topic: str, *, keys: int = 20, seed: int = 0) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.keys = [f"k-{i:03d}" for i in range(keys)]
        self.outbox = Outbox(router=TopicRouter(topic), source="tests.consumers")
        self.sent: list[KafkaRecord] = []
        self._random = random.Random(seed)
        self._next_seq: dict[str, int] = defaultdict(int)
        self._producer: Producer | None = None

    def event(self, key: str, **extra: Any) -> KafkaRecord:
        seq = self._next_seq[key]
        self._next_seq[key] += 1
        payload = {"key": key, "seq": seq, **extra}
        event = Event(type=EVENT_TYPE, aggregate_type=AGGREGATE_TYPE, aggregate_id=key, payload=payload)
        return to_kafka(self.outbox.prepare(event))

    def numbered(self, count: int) -> list[KafkaRecord]:
        """The next `count` events, over random keys (not yet sent)."""
        return [self.event(self._random.choice(self.keys)) for _ in range(count)]

    def write(self, count: int) -> list[KafkaRecord]:
        """Produce the next `count` events; returns them once Kafka acknowledged all."""
        records = self.numbered(count)
        self.send(records)
        return records

    def send(self, records: Iterable[KafkaRecord]) -> None:
        """Produce `records` (new, or earlier ones again) with an idempotent producer; wait for the acks."""
        records = list(records)
        if self._producer is None:
            self._producer = Producer(self._settings(**{"enable.idempotence": True}))
        failures: list[str] = []
        for record in records:
            self._produce(self._producer, record, failures)
        if self._producer.flush(60) or failures:
            raise AssertionError(f"Kafka did not take the suite's records: {failures[:3] or 'timeout'}")
        self.sent.extend(records)

    def transactions(self, plan: Sequence[tuple[int, bool]]) -> list[KafkaRecord]:
        """One Kafka transaction per (events, commit?) of `plan`; returns the aborted records.

        An aborted transaction's records are flushed to the log before the abort, so the topic
        holds them (read_uncommitted sees them) between the commit markers."""
        producer = Producer(self._settings(**{"transactional.id": f"conformance-{uuid.uuid4().hex[:8]}"}))
        producer.init_transactions(30)
        aborted: list[KafkaRecord] = []
        for count, commit in plan:
            records = self.numbered(count)
            producer.begin_transaction()
            failures: list[str] = []
            for record in records:
                self._produce(producer, record, failures)
            assert producer.flush(60) == 0 and not failures, failures[:3]
            if commit:
                producer.commit_transaction(30)
                self.sent.extend(records)
            else:
                producer.abort_transaction(30)
                aborted.extend(records)
        return aborted

    def poison(self, *, failing: bool = True) -> list[KafkaRecord]:
        """Poison records on keys that get later events (not yet sent): a JSON payload that is
        not JSON, a record without the envelope, and (`failing`) an event its handler always fails on."""
        key = self._random.choice(self.keys)
        good = self.event(key, note="the template of the poison")
        ce_id = (CE_ID, str(uuid.uuid4()).encode())
        # Each value unique, so that the dead letters can be told apart by key and value.
        broken = b"{not json " + uuid.uuid4().hex.encode()
        headers = [(k, v) for k, v in good.headers if k != CE_ID] + [ce_id]
        not_json = KafkaRecord(self.topic, good.key, broken, headers)
        bare = orjson.dumps({"key": key, "seq": 0, "id": str(uuid.uuid4())})
        no_envelope = KafkaRecord(self.topic, good.key, bare, [("ce_type", EVENT_TYPE.encode())])
        records = [not_json, no_envelope]
        if failing:
            records.append(self.event(self._random.choice(self.keys), fail=True))
        return records

    def _settings(self, **extra: Any) -> dict[str, Any]:
        # The relays' partitioner (murmur2, as Java clients and Kafka Connect use).
        return {"bootstrap.servers": self.bootstrap, "partitioner": "murmur2_random", "acks": "all", **extra}

    @staticmethod
    def _produce(producer: Producer, record: KafkaRecord, failures: list[str]) -> None:
        while True:
            try:
                producer.produce(
                    record.topic,
                    key=record.key,
                    value=record.value,
                    headers=list[tuple[str, str | bytes | None]](record.headers),
                    on_delivery=lambda err, _m: failures.append(str(err)) if err else None,
                )
                return
            except BufferError:
                producer.poll(0.1)


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
