"""The consumer contract: one suite for every consumer-side component (projectors now; the
exactly-once processors and the KV store's reader when they come), in the manner of Watermill's
shared pub/sub tests and eventsourcing's conformance classes.

A component's test module subclasses `ConsumerConformance` and provides the `component` fixture: a
function that wires the component to the inputs a case made (`Inputs`: a fresh topic, a
dead-letter topic, a unique name) and returns its adapter, a `ComponentUnderTest`. The adapter
starts instances as real processes (so that they can be killed with SIGKILL), reports the
positions the component stored and the effects it produced. Capability flags (class attributes)
say which cases apply. Every case judges the component against an independent read of its input
topic (`tests.consumers.workload`): what was lost, duplicated, reordered, applied though never
committed, and which keys ended in the wrong state.

Adding a component means writing one adapter and one subclass; see
`tests/consumers/test_projector_conformance.py`.

Sizes are CI-sized: the kill case kills 5 times over 3,000 events, the rebalance case feeds about
400 events/s while three instances come and go. `OUTBOX_CONFORMANCE_SCALE=N` multiplies the events
of every case, the feed rate and the kill rounds (and the patience of every wait), e.g.
`OUTBOX_CONFORMANCE_SCALE=10 pytest tests/consumers` for 50 kills over 30,000 events.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import pytest
from confluent_kafka import Message

from tests.consumers.workload import (
    CLEAN,
    Effects,
    Expected,
    Feed,
    InputRecord,
    Tally,
    event_id,
    flowing,
    read_expected,
    tally,
)
from tests.services import read_all

SCALE = int(os.environ.get("OUTBOX_CONFORMANCE_SCALE") or "1")
"""Multiplies events and kill rounds (CI: 1)."""
if SCALE < 1:
    raise ValueError(f"OUTBOX_CONFORMANCE_SCALE must be a whole number of at least 1, not {SCALE}")


@dataclass(frozen=True)
class Inputs:
    """What a case hands to the component: where to read, where to dead-letter, how to run."""

    name: str
    """Unique per case: the component's name (and consumer group, store, transactional ids)."""
    topic: str
    dead_letter_topic: str
    batch_size: int = 50
    """Records per unit of work (batch, transaction), where the component has the setting."""
    republished: bool = False
    """The topic will hold republished events (same `ce_id`, new offset). Only then does a
    component turn on a defence by event id that it has (projectors' `dedupe_event_ids`): in the
    other cases nothing but its stored positions must stand in the way of a double apply."""


class Instance(Protocol):
    """One running instance of the component: a process of its own."""

    name: str

    def kill(self) -> None:
        """SIGKILL, and wait for the process to be gone: no clean-up of any kind."""

    def stop(self) -> None:
        """Ask it to stop (SIGTERM) and wait; fails unless it exits cleanly (status 0)."""

    def exited(self) -> int | None:
        """Its exit status, None while it runs."""


class ComponentUnderTest(Protocol):
    """A consumer-side component wired to one case's `Inputs`."""

    def start(self, identity: str | None = None) -> Instance:
        """Start an instance. One started with the `identity` of a dead one takes its place at once
        where the component can (Kafka static membership); without, it joins as a new member."""

    def positions(self) -> dict[int, int]:
        """Partition -> next offset, as the component stored it: where a restarted instance resumes."""

    def effects(self) -> Effects:
        """Every application the component committed, in order, and its state now."""

    def rewind(self) -> None:
        """Make the next instance read the topic again from offset 0, remembering nothing of what it
        applied beyond its state (a replay). Called while no instance runs."""

    def in_batch(self, instance: Instance) -> bool | None:
        """Whether `instance` is inside a unit of work now (a batch's open transaction); None if
        the adapter cannot tell."""

    def lag(self) -> dict[int, int]:
        """Partition -> records not applied yet, as the component reports it (status, metrics)."""

    def publish_dead_letters(self) -> None:
        """Until the dead letters the component committed are on the dead-letter topic: a
        component that writes them through the outbox runs a relay until they are sent; one that
        produces them itself has nothing to do."""

    def check_dead_letter(self, letter: Message, record: InputRecord) -> None:
        """Assert that `letter` is the component's dead letter of `record`, in its own format."""

    def close(self) -> None:
        """Kill every instance still running."""


ComponentFactory = Callable[[Inputs], ComponentUnderTest]


@dataclass
class Case:
    """One case's component, its input feed, and the waits every case needs."""

    component: ComponentUnderTest
    feed: Feed
    inputs: Inputs
    partitions: int
    bootstrap: str

    def start(self, identity: str | None = None) -> Instance:
        return self.component.start(identity)

    def expected(self) -> Expected:
        return read_expected(self.bootstrap, self.inputs.topic)

    def progress(self) -> int:
        """Sum of the stored positions (on a topic of plain records: how many were handled)."""
        return sum(self.component.positions().values())

    def wait(
        self,
        condition: Callable[[], bool],
        what: str,
        running: Sequence[Instance],
        timeout: float,
        every: float = 0.1,
    ) -> None:
        """Until `condition` holds (asked every `every` s); fails early when one of the `running`
        instances exited."""
        deadline = time.monotonic() + timeout * SCALE
        while not condition():
            for instance in running:
                status = instance.exited()
                assert status is None, (
                    f"instance {instance.name} exited with {status} while waiting for {what}"
                )
            assert time.monotonic() < deadline, f"timed out after {timeout * SCALE} s waiting for {what}"
            time.sleep(every)

    def wait_caught_up(self, expected: Expected, running: Sequence[Instance], timeout: float = 90) -> None:
        """Until the stored positions reach the offset after the last record of every partition."""
        ends = expected.ends

        def caught_up() -> bool:
            positions = self.component.positions()
            return all(positions.get(p, 0) >= end for p, end in ends.items())

        self.wait(caught_up, f"positions at {ends}", running, timeout)

    def wait_progress(self, target: int, running: Sequence[Instance], timeout: float = 60) -> None:
        # Asked often: a fast component handles hundreds of records between two looks.
        self.wait(lambda: self.progress() >= target, f"{target} records handled", running, timeout, 0.01)

    def kill_in_batch(self, instance: Instance, timeout: float = 10) -> bool | None:
        """SIGKILL `instance` as soon as it is inside a unit of work (at most `timeout` s later);
        returns whether it was (None: the adapter cannot tell)."""
        deadline = time.monotonic() + timeout
        inside = self.component.in_batch(instance)
        while inside is False and time.monotonic() < deadline:
            time.sleep(0.002)
            inside = self.component.in_batch(instance)
        instance.kill()
        return inside


def assert_clean(found: Tally, *, duplicates_allowed: bool = False) -> None:
    """Nothing lost, reordered, invented or wrong; nothing duplicated unless `duplicates_allowed`."""
    counts = found.counts()
    want = dict(CLEAN, duplicated=counts["duplicated"]) if duplicates_allowed else CLEAN
    assert counts == want, f"against the topic: {found}"


class ConsumerConformance:
    """Every consumer-side component passes these. Subclasses provide the `component` fixture."""

    consumer_group = True
    """Capability: instances share the partitions in a consumer group (the rebalance case)."""
    dedupes_event_ids = True
    """Capability: a republished event (same `ce_id`, new offset) changes nothing."""
    exactly_once = True
    """Capability: no application is committed twice, across kill -9 and rebalances; without it
    duplicates are allowed (and counted), but nothing may be lost and the final state must be exact."""
    handlers = True
    """Capability: user code handles each event, so an event can fail for good (the poison case)."""
    dead_letters = True
    """Capability: poison goes to the dead-letter topic (without: it is skipped, and only counted)."""
    reports_lag = True
    """Capability: the component says how far behind it is (`ComponentUnderTest.lag`)."""

    @pytest.fixture
    def component(self) -> ComponentFactory:
        raise NotImplementedError

    @pytest.fixture
    def case(
        self,
        component: ComponentFactory,
        bootstrap_servers: str,
        new_topic: Callable[..., str],
        unique: Callable[[str], str],
    ) -> Iterator[Callable[..., Case]]:
        """case(prefix, partitions=, keys=, seed=, **Inputs fields) -> a Case on fresh topics."""
        made: list[ComponentUnderTest] = []

        def make(prefix: str, *, partitions: int, keys: int = 20, seed: int = 0, **options: object) -> Case:
            topic = new_topic(f"conformance-{prefix}", partitions=partitions)
            inputs = Inputs(unique(prefix), topic, new_topic(f"conformance-{prefix}-dlq"), **options)
            made.append(component(inputs))
            feed = Feed(bootstrap_servers, topic, keys=keys, seed=seed)
            return Case(made[-1], feed, inputs, partitions, bootstrap_servers)

        yield make
        for made_component in made:
            made_component.close()

    def test_redelivery_and_replay_from_offset_zero_change_nothing(self, case: Callable[..., Case]) -> None:
        """Redelivery: what an at-least-once relay does after a crash (a run of records sent again,
        in order) and `outbox replay` of old events do: the same `ce_id`s at new offsets. Replay:
        the component reads the topic again from offset 0, remembering nothing but its state."""
        c = case("replay", partitions=3, keys=60, seed=3, republished=self.dedupes_event_ids)
        first = c.feed.write(1200 * SCALE)
        instance = c.start()
        expected = c.expected()
        c.wait_caught_up(expected, [instance])
        before = c.component.effects()
        assert_clean(tally(expected, before))

        if self.dedupes_event_ids:
            again = first[300:360] + first[::37]  # the old ones would bring back overridden values
            c.feed.send(again)
            later = c.expected()
            assert len(later.records) == len(expected.records) + len(again), "the copies are on the topic"
            c.wait_caught_up(later, [instance])
            after = c.component.effects()
            assert after.applied[len(before.applied) :] == [], "a republished event was applied again"
            assert after.state == before.state
            assert_clean(tally(later, after))
            expected, before = later, after
        instance.stop()

        c.component.rewind()
        assert set(c.component.positions().values()) <= {0}, "the replay starts at offset 0"
        instance = c.start()
        c.wait_caught_up(expected, [instance])
        instance.stop()
        after = c.component.effects()
        replayed = after.applied[len(before.applied) :]
        assert [a for a in replayed if a.changed] == [], "the replay changed the state"
        assert after.state == before.state
        assert_clean(tally(expected, after, changes_only=True))

    def test_kill_9_during_batches_loses_nothing_and_applies_nothing_twice(
        self, case: Callable[..., Case]
    ) -> None:
        """kill -9 inside a batch, again and again, while records keep arriving (a backlog alone
        is gone in a second through a fast component, before the kills are done)."""
        rounds = 5 * SCALE
        c = case("kill", partitions=3, keys=300, seed=7, batch_size=50)
        c.feed.write(500 * SCALE)
        chance = random.Random(11)
        inside: list[bool | None] = []
        with flowing(c.feed, 400 * SCALE):
            for _ in range(rounds):
                # The same identity each time: the restarted instance takes the partitions back at once.
                instance = c.start("kill-1")
                # Asked once it runs: a kill between a transaction's offsets and its commit leaves
                # the stored positions unstable until that transaction ends, which the restarted
                # instance does at once (it fences its predecessor) and the broker only after the
                # transaction timeout (10-20 s a kill, when asked before the restart).
                target = c.progress() + chance.randrange(50, 400)
                c.wait_progress(target, [instance])
                inside.append(c.kill_in_batch(instance))
        if None not in inside:
            assert all(inside), f"kills that landed outside a batch: {inside.count(False)} of {rounds}"

        expected = c.expected()
        instance = c.start("kill-1")
        c.wait_caught_up(expected, [instance])
        instance.stop()
        found = tally(expected, c.component.effects())
        assert_clean(found, duplicates_allowed=not self.exactly_once)

    def test_rebalances_while_records_flow_lose_nothing_and_apply_nothing_twice(
        self, case: Callable[..., Case]
    ) -> None:
        """Instances join, leave (SIGTERM) and die (SIGKILL, inside a batch) while records arrive."""
        if not self.consumer_group:
            pytest.skip("capability consumer_group is off: every instance reads every partition")
        c = case("rebalance", partitions=6, keys=400, seed=5, batch_size=50)
        c.feed.write(1000 * SCALE)

        def working(instance: Instance, running: Sequence[Instance]) -> None:
            """Until `instance` applied something: it joined and the group gave it partitions."""
            has_worked = lambda: any(a.instance == instance.name for a in c.component.effects().applied)  # noqa: E731
            c.wait(has_worked, f"{instance.name} to apply records", running, timeout=60)

        with flowing(c.feed, 400 * SCALE):  # until the last change of members
            a = c.start()
            working(a, [a])
            b, d = c.start(), c.start()  # two join at once: one rebalance, both get partitions
            working(b, [a, b, d])
            working(d, [a, b, d])
            b.stop()  # leaves the group: the others take its partitions over
            c.wait_progress(c.progress() + 50, [a, d])
            inside = c.kill_in_batch(d)  # dies: its partitions move to a after the session timeout
            c.wait_progress(c.progress() + 50, [a])
        assert inside is not False, "the instance was killed outside a batch"
        expected = c.expected()
        c.wait_caught_up(expected, [a])
        a.stop()
        found = tally(expected, c.component.effects())
        assert_clean(found, duplicates_allowed=not self.exactly_once)

    def test_aborted_transactions_are_never_applied_and_markers_do_not_stall(
        self, case: Callable[..., Case]
    ) -> None:
        """A transactional input topic: aborted records are never applied; neither the commit
        markers nor the offsets aborted records leave behind hold the consumer, also when an
        instance starts where the log ends in an aborted transaction."""
        c = case("aborted", partitions=2, seed=13)
        plan = [(60, True), (40, False), (50, True), (1, False), (30, False), (20, True), (25, False)]
        aborted = {event_id(r) for r in c.feed.transactions([(n * SCALE, ok) for n, ok in plan])}
        expected = c.expected()
        everything = read_expected(c.bootstrap, c.inputs.topic, isolation="read_uncommitted")
        assert aborted <= {r.event_id for r in everything.records}, "the aborted records are in the log"
        assert not aborted & set(expected.events), "read_committed hides them"

        instance = c.start()
        c.wait_caught_up(expected, [instance])
        instance.stop()
        # A new instance resumes after the aborted tail, and later records still arrive.
        c.feed.transactions([(30 * SCALE, True)])
        c.feed.write(20 * SCALE)
        instance = c.start()
        expected = c.expected()
        c.wait_caught_up(expected, [instance])
        instance.stop()
        found = tally(expected, c.component.effects())
        assert_clean(found)

    def test_caught_up_reports_no_lag_past_commit_markers_and_an_aborted_transaction(
        self, case: Callable[..., Case]
    ) -> None:
        """Caught up (DESIGN.md, "Versions"): once everything is applied the component reports no
        lag, commit markers and aborted records notwithstanding. A lag they leave never goes away:
        an alert that never clears, a wait for lag 0 that hangs."""
        self.check_no_lag_when_caught_up(case("caught-up", partitions=1, seed=17), aborted=10)

    def test_caught_up_reports_no_lag_past_a_long_aborted_transaction(
        self, case: Callable[..., Case]
    ) -> None:
        """The same when the last transaction, aborted, held 2,000 records (a producer's big batch)."""
        self.check_no_lag_when_caught_up(case("caught-up-long", partitions=1, seed=23), aborted=2000)

    def check_no_lag_when_caught_up(self, c: Case, *, aborted: int) -> None:
        if not self.reports_lag:
            pytest.skip("capability reports_lag is off")
        c.feed.transactions([(20, True), (aborted, False)])
        instance = c.start()
        c.wait_caught_up(c.expected(), [instance])
        instance.stop()
        try:
            c.wait(lambda: set(c.component.lag().values()) == {0}, "lag 0", [], timeout=2)
        except AssertionError as err:
            raise AssertionError(f"{err}; it reports {c.component.lag()} (partition: lag)") from None

    def test_poison_is_dead_lettered_once_and_the_partition_goes_on(self, case: Callable[..., Case]) -> None:
        """An undecodable record and (with handlers) an event whose handler always fails, twice each,
        among good ones: each is dead-lettered once, and every event after it is applied."""
        c = case("poison", partitions=2, seed=19)
        f = c.feed
        for _ in range(2):
            f.write(100 * SCALE)
            f.send(f.poison(failing=self.handlers))
        f.write(100 * SCALE)
        expected = c.expected()
        poison = expected.poison
        assert len(poison) == (6 if self.handlers else 4)
        assert all(
            any(r.partition == p.partition and r.offset > p.offset and not r.poison for r in expected.records)
            for p in poison
        ), "every poison record has good ones after it on its partition"

        instance = c.start()
        c.wait_caught_up(expected, [instance])
        instance.stop()
        found = tally(expected, c.component.effects())
        assert_clean(found)
        c.component.publish_dead_letters()
        letters = read_all(c.bootstrap, c.inputs.dead_letter_topic)
        if not self.dead_letters:
            assert letters == []
            return
        by_content = {(p.key.encode(), p.value): p for p in poison}
        assert len(by_content) == len(poison)
        assert sorted((m.key() or b"", m.value() or b"") for m in letters) == sorted(by_content), (
            "each poison record dead-lettered once, nothing else"
        )
        for letter in letters:
            c.component.check_dead_letter(letter, by_content[letter.key() or b"", letter.value() or b""])
