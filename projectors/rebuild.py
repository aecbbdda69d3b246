"""Blue/green rebuild of a read model: project every retained event into fresh tables, then swap.

The fresh tables are built in a schema of their own (`outboxkit_rebuild_<name>`) with the same
names: handlers run unchanged, with that schema first on their `search_path`. Readers keep reading
the live tables meanwhile. The swap is one transaction: lock the live projector's offset rows
(waiting for a batch in flight), drop the live tables, move the new ones into the live schema, and
make the rebuild's offsets and applied ids the projector's. Readers see the old tables until the
commit and the new, complete ones after it; a reader that queries during the swap waits for it.
A running projector then finds its offsets moved (fencing), re-reads them and goes on from there.

The swap keeps the live tables' grants and hand-made indexes (projectors/carryover.py). Caveat:
views or foreign keys of other tables that depend on a read-model table make the swap fail (it
never drops them); recreate them after the rebuild.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from confluent_kafka import Consumer
from sqlalchemy import Connection, Engine, MetaData

from outboxkit.kafka.admin import partition_counts
from outboxkit.kafka.catchup import read_to_end
from outboxkit.kafka.dead_letter import DeadLetterPublisher
from outboxkit.kafka.errors import KafkaUnavailableError
from outboxkit.kafka.records import where
from outboxkit.kafka.settings import KafkaSettings
from projectors.apply import BatchApplier, FencedError
from projectors.carryover import carried_over
from projectors.database import driver_errors
from projectors.errors import RebuildError
from projectors.metrics import ProjectorMetrics
from projectors.projector import Projector
from projectors.runtime import consumer_settings
from projectors.schema import check_tracking_tables
from projectors.tracking import OffsetStore

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called with (records done, records to do) as the rebuild advances."""


def rebuild_schema(projector: Projector) -> str:
    """The schema the fresh tables are built in."""
    return ("outboxkit_rebuild_" + re.sub(r"[^a-z0-9_]", "_", projector.name.lower()))[:63]


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def rebuild(
    projector: Projector,
    engine: Engine,
    kafka: KafkaSettings | str,
    *,
    progress: Progress | None = None,
    metrics: ProjectorMetrics | None = None,
    idle_timeout: float = 60.0,
    after_swap: Callable[[Connection], None] | None = None,
) -> int:
    """Rebuild the projector's read model from the start of its topics and swap it in; returns the
    number of offsets read (records, and the markers of transactions). The projector may keep
    running meanwhile. RebuildError, swapping nothing in, when reading makes no progress for
    `idle_timeout` seconds (Kafka unavailable).

    The swap gives the new tables the live ones' grants and the indexes made by hand
    (projectors/carryover.py); `after_swap(conn)` runs in the swap's transaction, after the move,
    for what is not carried over (triggers, policies, views on the tables...)."""
    with driver_errors(f"rebuild of projector {projector.name!r}"):
        return _rebuild(
            projector,
            KafkaSettings.of(kafka),
            engine,
            progress=progress,
            metrics=metrics,
            idle=idle_timeout,
            after_swap=after_swap,
        )


def _rebuild(
    projector: Projector,
    kafka: KafkaSettings,
    engine: Engine,
    *,
    progress: Progress | None,
    metrics: ProjectorMetrics | None,
    idle: float,
    after_swap: Callable[[Connection], None] | None,
) -> int:
    metadata = read_model(projector)
    schema = rebuild_schema(projector)
    live_store, store = OffsetStore(projector.name), OffsetStore(f"{projector.name}@rebuild")
    with engine.begin() as conn:
        check_tracking_tables(conn, projector)  # the read model's tables are what a rebuild makes
        search_path = str(conn.exec_driver_sql("SHOW search_path").scalar_one())
        live_schema = str(conn.exec_driver_sql("SELECT current_schema()").scalar_one())
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {quote(schema)} CASCADE")
        conn.exec_driver_sql(f"CREATE SCHEMA {quote(schema)}")
        conn.exec_driver_sql(f"SET LOCAL search_path TO {quote(schema)}, {search_path}")
        metadata.create_all(conn, checkfirst=False)
        store.forget(conn)

    def setup(conn: Connection) -> None:
        conn.exec_driver_sql(f"SET LOCAL search_path TO {quote(schema)}, {search_path}")

    dead_letters = DeadLetterPublisher(kafka, projector.name, projector.config.dead_letter_topic)
    applier = BatchApplier(projector, engine, store, dead_letters, metrics or ProjectorMetrics(), setup=setup)
    swapped = False
    try:
        done = catch_up(applier, kafka, progress, idle)
        # The live projector moved on while we built: a second, short pass narrows the gap.
        done += catch_up(applier, kafka, None, idle)
        with engine.begin() as conn:
            live_store.load(conn, store.all(conn), lock=True)
            kept = [
                statement
                for table in metadata.sorted_tables
                for statement in carried_over(
                    conn, f"{quote(live_schema)}.{quote(table.name)}", f"{quote(schema)}.{quote(table.name)}"
                )
            ]
            for table in reversed(metadata.sorted_tables):
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(live_schema)}.{quote(table.name)}")
            for table in metadata.sorted_tables:
                conn.exec_driver_sql(
                    f"ALTER TABLE {quote(schema)}.{quote(table.name)} SET SCHEMA {quote(live_schema)}"
                )
            for statement in kept:
                conn.exec_driver_sql(statement)
            if after_swap is not None:
                after_swap(conn)
            live_store.take_over(conn, store)
        swapped = True
        log.info("rebuild of %s swapped in after %d records", projector.name, done)
        return done
    finally:
        dead_letters.close()
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {quote(schema)} CASCADE")
            if not swapped:
                store.forget(conn)


def read_model(projector: Projector) -> MetaData:
    """The projector's read-model tables; RebuildError when it declares none or pins a schema."""
    metadata = projector.metadata
    if metadata is None or not metadata.tables:
        raise RebuildError(f"projector {projector.name!r} declares no read-model tables (metadata=...)")
    pinned = [t.fullname for t in metadata.sorted_tables if t.schema is not None]
    if pinned:
        raise RebuildError(f"rebuild needs read-model tables without a schema; {pinned} name one")
    return metadata


def catch_up(
    applier: BatchApplier, kafka: KafkaSettings, progress: Progress | None, idle_timeout: float
) -> int:
    """Apply records until every partition reached the end it had when this began
    (outboxkit.kafka.catchup: marker-safe); returns the offsets covered."""
    projector, store = applier.projector, applier.store
    settings = consumer_settings(projector, kafka)
    settings["group.id"] = f"{projector.group_id}.rebuild"  # never joined: partitions are assigned
    settings.pop("group.instance.id", None)
    consumer = Consumer(settings)
    try:
        counts = partition_counts(consumer, projector.topics)
        partitions = [(t, p) for t, n in counts.items() for p in range(n)]
        with applier.engine.begin() as conn:
            positions = store.claim(conn, partitions, counts)
        covered = 0
        for records, reached in read_to_end(
            consumer, positions, batch_size=projector.config.batch_size, timeout=idle_timeout
        ):
            if records:
                try:
                    positions.update(applier.apply(records, {where(m): positions[where(m)] for m in records}))
                except FencedError as err:
                    raise RebuildError(f"another rebuild of {projector.name!r} is running: {err}") from err
            covered = reached.covered
            if progress is not None:
                progress(covered, reached.total)
        return covered
    except KafkaUnavailableError as err:
        raise RebuildError(f"rebuild of {projector.name!r} stopped, nothing swapped in: {err}") from err
    finally:
        consumer.close()
