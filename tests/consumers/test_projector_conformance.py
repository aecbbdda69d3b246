"""Projectors run the consumer conformance suite (tests/consumers/conformance.py): each instance is
an `outbox projector run tests.consumers.projector_target:from_environment` process."""

from __future__ import annotations

import itertools
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from confluent_kafka import Message
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from outbox import migrations
from projectors import projector_status
from tests.consumers import projector_target
from tests.consumers.conformance import ComponentFactory, ConsumerConformance, Inputs
from tests.consumers.workload import Applied, Effects, InputRecord, Version
from tests.projectors.conftest import projector_process

REFERENCE = "tests.consumers.projector_target:from_environment"


@dataclass
class ProjectorInstance:
    name: str
    application_name: str
    """The instance's PostgreSQL `application_name`: how the adapter finds its open transaction."""
    process: subprocess.Popen[bytes]
    component: ProjectorUnderTest

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        self.component.wait_up(self)
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(30) == 0, f"instance {self.name} exited with {self.process.returncode}"

    def exited(self) -> int | None:
        return self.process.poll()


@dataclass
class ProjectorUnderTest:
    inputs: Inputs
    database_url: str
    bootstrap: str
    engine: Engine
    instances: list[ProjectorInstance] = field(default_factory=list)
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def start(self, identity: str | None = None) -> ProjectorInstance:
        n = next(self._numbers)
        name = f"{identity or 'instance'}.{n}"
        application_name = f"{self.inputs.name}/{n}"
        url = make_url(self.database_url).update_query_dict({"application_name": application_name})
        env = {
            "CONFORMANCE_PROJECTOR": self.inputs.name,
            "CONFORMANCE_TOPIC": self.inputs.topic,
            "CONFORMANCE_DLQ": self.inputs.dead_letter_topic,
            "CONFORMANCE_INSTANCE": name,
            "CONFORMANCE_DEDUPE": "1" if self.inputs.republished else "0",
        }
        args = ["--batch-size", str(self.inputs.batch_size)]
        if identity is not None:
            args += ["--instance-id", identity]
        process = projector_process(
            REFERENCE, url.render_as_string(hide_password=False), self.bootstrap, env, *args
        )
        instance = ProjectorInstance(name, application_name, process, self)
        self.instances.append(instance)
        return instance

    def wait_up(self, instance: ProjectorInstance, timeout: float = 60) -> None:
        """Until the instance has connected to the database: its signal handlers are in place then
        (a SIGTERM earlier would kill it like a SIGKILL)."""
        deadline = time.monotonic() + timeout
        while not self._sessions(instance, "TRUE"):
            status = instance.exited()
            assert status is None, f"instance {instance.name} exited with {status} while starting"
            assert time.monotonic() < deadline, f"instance {instance.name} did not connect in {timeout} s"
            time.sleep(0.05)

    def positions(self) -> dict[int, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT partition, next_offset FROM projector_offsets WHERE projector = :p AND topic = :t"
                ),
                {"p": self.inputs.name, "t": self.inputs.topic},
            )
            return {int(p): int(n) for p, n in rows}

    def effects(self) -> Effects:
        log, state = projector_target.applied, projector_target.state
        with self.engine.connect() as conn:
            applied = [
                Applied(r.event_id, r.key, r.seq, r.partition, r.offset, r.instance, r.changed)
                for r in conn.execute(
                    sa.select(log).where(log.c.projector == self.inputs.name).order_by(log.c.id)
                )
            ]
            rows = conn.execute(sa.select(state).where(state.c.projector == self.inputs.name))
            current = {r.key: Version(r.seq, r.source_partition, r.source_offset) for r in rows}
        return Effects(applied, current)

    def rewind(self) -> None:
        # The documented tables (docs/projectors.md, "Tables"): offsets back to 0, applied ids
        # forgotten, so that only the row versions stand in the way.
        with self.engine.begin() as conn:
            params = {"p": self.inputs.name}
            conn.execute(sa.text("UPDATE projector_offsets SET next_offset = 0 WHERE projector = :p"), params)
            conn.execute(sa.text("DELETE FROM projector_applied_events WHERE projector = :p"), params)

    def in_batch(self, instance: ProjectorInstance) -> bool:
        # A batch's transaction locks its offset rows first (SELECT ... FOR UPDATE), which gives
        # it a transaction id: an xid on one of the instance's sessions means a batch is open.
        return self._sessions(instance, "backend_xid IS NOT NULL")

    def _sessions(self, instance: ProjectorInstance, condition: str) -> bool:
        """Whether one of the instance's database sessions meets `condition` (on pg_stat_activity)."""
        query = f"SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = :a AND {condition})"
        with self.engine.connect() as conn:
            return bool(conn.execute(sa.text(query), {"a": instance.application_name}).scalar_one())

    def lag(self) -> dict[int, int]:
        definition = projector_target.build(
            self.inputs.name,
            self.inputs.topic,
            self.inputs.dead_letter_topic,
            instance="status",
            dedupe=False,
        )
        return {s.partition: s.lag for s in projector_status(definition, self.engine, self.bootstrap)}

    def publish_dead_letters(self) -> None:
        """Published by the projector itself."""

    def check_dead_letter(self, letter: Message, record: InputRecord) -> None:
        headers = letter.headers() or []
        found = dict(headers)
        assert headers[: len(record.headers)] == list(record.headers), "the original headers come first"
        assert found["dlq_topic"] == self.inputs.topic.encode()
        assert (found["dlq_partition"], found["dlq_offset"]) == (
            b"%d" % record.partition,
            b"%d" % record.offset,
        )
        assert found["dlq_projector"] == self.inputs.name.encode()
        if record.seq is None:  # not an event: dead-lettered at once, never retried
            assert b"UndecodableRecordError" in found["dlq_exception"]
            assert found["dlq_attempts"] == b"1"
            if record.event_id is not None:
                assert b"not JSON" in found["dlq_reason"]
        else:  # its handler failed: one try and max_retries=1 retry
            assert found["dlq_exception"] == b"tests.consumers.projector_target.PoisonedEventError"
            assert found["dlq_reason"].startswith(b"PoisonedEventError: event ")
            assert found["dlq_attempts"] == b"2"

    def close(self) -> None:
        for instance in self.instances:
            if instance.exited() is None:
                instance.kill()


class TestProjector(ConsumerConformance):
    @pytest.fixture
    def component(self, conformance_db: str, bootstrap_servers: str) -> Iterator[ComponentFactory]:
        engine = create_engine(migrations.sqlalchemy_url(conformance_db), pool_pre_ping=True)
        make: Callable[[Inputs], ProjectorUnderTest] = lambda inputs: ProjectorUnderTest(  # noqa: E731
            inputs, conformance_db, bootstrap_servers, engine
        )
        yield make
        engine.dispose()
