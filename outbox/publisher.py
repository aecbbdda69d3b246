"""publish() and publish_many(): write events in the caller's transaction. Never commits."""

from __future__ import annotations

from collections.abc import Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, overload

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from outbox.config import KAFKA_DEFAULT_MAX_RECORD_BYTES, OutboxSettings, Retention
from outbox.envelope import KafkaRecord, StoredEvent, encode
from outbox.errors import (
    EventTooLargeError,
    InvalidEventError,
    MigrationError,
    StorageError,
    UnsupportedTargetError,
)
from outbox.event import TOMBSTONE, Event
from outbox.routing import TopicRouter
from outbox.schema import RUN_MIGRATIONS, TABLE
from outbox.serialization import JsonSerializer, Serializer, checked_content_type, serialized
from outbox.sql import DELETE_SQL, SQL, delete_statement, insert_statement
from outbox.validation import (
    checked_headers,
    checked_id,
    checked_traceparent,
    rendered_time,
    required_text,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

SyncTarget = Session | Connection
# Built once: SQLAlchemy then finds the compiled form in its cache instead of parsing the text.
_TEXT = {query: text(query) for query in [*SQL.values(), DELETE_SQL]}

Rendered = tuple[str, str, str, str, str, str, str, str, bytes | None, dict[str, str], str | None]
"""The fields of a StoredEvent, in its order (outbox.envelope.encode takes them so)."""


@dataclass(frozen=True)
class Outbox:
    """How events are checked, rendered and written. Immutable; share one per service."""

    source: str = "outboxkit"
    """`ce_source` for events that do not set their own."""
    router: TopicRouter = field(default_factory=TopicRouter)
    """Topic of each event."""
    serializer: Serializer = field(default_factory=JsonSerializer)
    """Payload -> Kafka value bytes, and the `content-type` header."""
    max_record_bytes: int = KAFKA_DEFAULT_MAX_RECORD_BYTES
    """Largest Kafka record accepted, envelope and framing included."""
    notify_channel: str | None = "outbox_events"
    """Channel to NOTIFY on each write (wakes the relay); None sends no NOTIFY."""
    delete_after_insert: bool = False
    """Retention cdc_delete: delete the rows in the inserting transaction (only the CDC relay sees them)."""

    @classmethod
    def from_settings(
        cls, settings: OutboxSettings | None = None, serializer: Serializer | None = None
    ) -> Outbox:
        """An Outbox configured by OUTBOX_... settings (read from the environment when None)."""
        settings = settings or OutboxSettings.load()
        return cls(
            source=settings.source,
            router=TopicRouter(settings.topic_template),
            serializer=serializer or JsonSerializer(),
            max_record_bytes=settings.max_record_bytes,
            notify_channel=settings.notify_channel if settings.notify else None,
            delete_after_insert=settings.retention is Retention.CDC_DELETE,
        )

    def prepare(self, event: Event) -> StoredEvent:
        """Check `event` and render the row the relays read; raises an InvalidEventError subclass."""
        rendered = self._rendered(event)
        self._sized(encode(*rendered), rendered)
        return StoredEvent(*rendered)

    def record(self, event: Event) -> KafkaRecord:
        """Check `event` as `prepare` does and return the Kafka record a relay would send for it
        (`to_kafka(prepare(event))`, encoded once, without the StoredEvent): for components that
        produce events themselves, e.g. a Kafka-to-Kafka processor inside its Kafka transaction."""
        rendered = self._rendered(event)
        return self._sized(encode(*rendered), rendered)

    def _rendered(self, event: Event) -> Rendered:
        """The checked fields of the StoredEvent of `event`, in its field order (encode's too)."""
        if not isinstance(event, Event):
            several = "; for several events, call publish_many()" if isinstance(event, list | tuple) else ""
            raise InvalidEventError(
                f"publish() takes an outbox.Event, got {_shown(event)}{several}; build one with "
                "Event(type=..., aggregate_type=..., aggregate_id=..., payload=...)"
            )
        event_type = required_text("type", event.type)
        aggregate_type = required_text("aggregate_type", event.aggregate_type)
        aggregate_id = required_text("aggregate_id", event.aggregate_id)
        source = required_text("source", event.source or self.source)
        payload: bytes | None
        if event.payload is TOMBSTONE:  # a delete on a compacted topic: NULL payload, null value
            content_type, payload = checked_content_type(self.serializer), None
        else:
            content_type, payload = serialized(self.serializer, event.payload)
        return (
            checked_id(event.id),
            event_type,
            source,
            rendered_time(event.occurred_at),
            aggregate_type,
            aggregate_id,
            self.router.topic(aggregate_type, event_type, event.topic),
            content_type,
            payload,
            checked_headers(event.headers),
            checked_traceparent(event.traceparent),
        )

    def _sized(self, record: KafkaRecord, rendered: Rendered) -> KafkaRecord:
        size = record.size()
        if size > self.max_record_bytes:
            event_type, aggregate_type, aggregate_id = rendered[1], rendered[4], rendered[5]
            raise EventTooLargeError(
                f"event {event_type!r} for {aggregate_type} {aggregate_id!r} would be a Kafka "
                f"record of {size} bytes, over the limit of {self.max_record_bytes}: store large "
                "data elsewhere and send a reference, or raise max_record_bytes together with "
                "Kafka's message.max.bytes"
            )
        return record

    @overload
    def publish_many(self, target: SyncTarget, events: Iterable[Event]) -> None: ...

    @overload
    def publish_many(
        self, target: AsyncSession | AsyncConnection, events: Iterable[Event]
    ) -> Coroutine[Any, Any, None]: ...

    def publish_many(
        self, target: SyncTarget | AsyncSession | AsyncConnection, events: Iterable[Event]
    ) -> Coroutine[Any, Any, None] | None:
        """Write `events`, in order, in `target`'s transaction (await it for async targets)."""
        return self._insert([self.prepare(event) for event in _each_event(events)], target)

    def _insert(
        self, stored: list[StoredEvent], target: SyncTarget | AsyncSession | AsyncConnection
    ) -> Coroutine[Any, Any, None] | None:
        if isinstance(target, Session | Connection):
            if stored:
                _write(target, stored, self.notify_channel, self.delete_after_insert)
            return None
        if _is_async(target):
            return _write_async(target, stored, self.notify_channel, self.delete_after_insert)
        raise UnsupportedTargetError(
            f"publish() needs a SQLAlchemy Session, Connection, AsyncSession or AsyncConnection, "
            f"got {type(target).__name__}"
        )


def _shown(value: object) -> str:
    """The type and the start of the repr of a value given where events were expected."""
    shown = repr(value)
    return f"{type(value).__name__} {shown if len(shown) <= 80 else shown[:77] + '...'}"


def _each_event(events: object) -> Iterator[Event]:
    """The events of publish_many()'s argument, refusing what is no iterable of events (before any SQL:
    publish_many() renders every event before it writes)."""
    if isinstance(events, Event):
        raise InvalidEventError(
            "publish_many() takes an iterable of outbox.Event, got a single Event: pass [event], or "
            "call publish() for one event"
        )
    try:
        # Text, bytes and mappings iterate, but over characters, ints and keys: never events.
        if isinstance(events, str | bytes | bytearray | memoryview | Mapping):
            raise TypeError(type(events).__name__)
        iterator = iter(events)  # type: ignore[call-overload]
    except TypeError:
        hint = "pass a list (or tuple, or generator) of outbox.Event"
        if isinstance(events, Mapping):
            hint = "pass list(events.values()) if the values are the events, in the order to publish them"
        raise InvalidEventError(
            f"publish_many() takes an iterable of outbox.Event, got {_shown(events)}: {hint}"
        ) from None
    for position, event in enumerate(iterator):
        if not isinstance(event, Event):
            raise InvalidEventError(
                f"publish_many() takes outbox.Event instances: item {position} of the events is "
                f"{_shown(event)}, not an outbox.Event; build each with Event(type=..., "
                "aggregate_type=..., aggregate_id=..., payload=...)"
            )
        yield event


def _is_async(target: object) -> bool:
    try:
        from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
    except ImportError:  # pragma: no cover - sqlalchemy without its asyncio extension
        return False
    return isinstance(target, AsyncSession | AsyncConnection)


def _translate(err: DBAPIError) -> StorageError | MigrationError:
    # psycopg's UndefinedTable: the migrations have not been run on this database.
    if getattr(err.orig, "sqlstate", None) == "42P01":
        return MigrationError(f"table {TABLE} does not exist: {RUN_MIGRATIONS}; then roll back and retry")
    return StorageError(
        f"PostgreSQL refused the outbox write: {err.orig}. The transaction is aborted: roll it back"
    )


def _write(target: SyncTarget, events: Sequence[StoredEvent], channel: str | None, delete: bool) -> None:
    connection = target.connection() if isinstance(target, Session) else target
    _check_dialect(connection.dialect.name)
    query, params = insert_statement(events, channel)
    try:
        connection.execute(_TEXT[query], params)
        if delete:
            connection.execute(_TEXT[DELETE_SQL], delete_statement(events)[1])
    except DBAPIError as err:
        raise _translate(err) from err


async def _write_async(
    target: AsyncSession | AsyncConnection, events: Sequence[StoredEvent], channel: str | None, delete: bool
) -> None:
    if not events:
        return
    from sqlalchemy.ext.asyncio import AsyncSession

    connection = await target.connection() if isinstance(target, AsyncSession) else target
    _check_dialect(connection.dialect.name)
    query, params = insert_statement(events, channel)
    try:
        await connection.execute(_TEXT[query], params)
        if delete:
            await connection.execute(_TEXT[DELETE_SQL], delete_statement(events)[1])
    except DBAPIError as err:
        raise _translate(err) from err


def _check_dialect(name: str) -> None:
    if name != "postgresql":
        raise UnsupportedTargetError(f"the outbox needs PostgreSQL, this connection is {name}")


@cache
def default_outbox() -> Outbox:
    """The Outbox built from the environment's OUTBOX_... settings, read once."""
    return Outbox.from_settings()


@overload
def publish(target: SyncTarget, event: Event, *, outbox: Outbox | None = None) -> None: ...


@overload
def publish(
    target: AsyncSession | AsyncConnection, event: Event, *, outbox: Outbox | None = None
) -> Coroutine[Any, Any, None]: ...


def publish(
    target: SyncTarget | AsyncSession | AsyncConnection,
    event: Event,
    *,
    outbox: Outbox | None = None,
) -> Coroutine[Any, Any, None] | None:
    """Write `event` in the caller's transaction; `await` it for AsyncSession/AsyncConnection.

    Raises an InvalidEventError subclass for a bad event (nothing is written) and StorageError or
    MigrationError when PostgreSQL refuses (then roll the transaction back). Never commits.
    """
    outbox = outbox or default_outbox()
    return outbox._insert([outbox.prepare(event)], target)


@overload
def publish_many(target: SyncTarget, events: Iterable[Event], *, outbox: Outbox | None = None) -> None: ...


@overload
def publish_many(
    target: AsyncSession | AsyncConnection, events: Iterable[Event], *, outbox: Outbox | None = None
) -> Coroutine[Any, Any, None]: ...


def publish_many(
    target: SyncTarget | AsyncSession | AsyncConnection,
    events: Iterable[Event],
    *,
    outbox: Outbox | None = None,
) -> Coroutine[Any, Any, None] | None:
    """Write `events` in their order, in one statement, in the caller's transaction (see publish)."""
    return (outbox or default_outbox()).publish_many(target, events)
