"""AggregateRoot: ORM models record domain events; the session writes them when it flushes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from itertools import chain, count
from typing import Any, ClassVar

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, SessionTransaction, UOWTransaction
from sqlalchemy.orm.attributes import flag_dirty

from outbox.errors import InvalidEventError
from outbox.event import Event
from outbox.publisher import Outbox, default_outbox

# Orders events recorded on different aggregates of one session, so a flush writes them in the
# order they were recorded (itertools.count is atomic under the GIL).
_SEQUENCE = count()

_PENDING = "_outbox_pending"
# session.info key: aggregates with queued events, so a rollback finds them even after it has
# expunged the objects that were new in the rolled-back transaction.
_RECORDERS = "outbox.recorders"


@dataclasses.dataclass(frozen=True)
class _Pending:
    seq: int
    event: Event
    transaction: SessionTransaction | None


class AggregateRoot:
    """Mixin for mapped classes: `order.record(OrderPlaced(...))` queues an event for the outbox.

    Queued events are written in the flush that persists the aggregate, in the same transaction,
    in the order they were recorded; rolling back a savepoint drops the events recorded in it.
    The aggregate id is the primary key (override `outbox_aggregate_id`), the aggregate type is
    `__outbox_aggregate_type__` or the table name. Errors in an event surface at flush time.
    """

    __outbox_aggregate_type__: ClassVar[str | None] = None
    __outbox__: ClassVar[Outbox | None] = None
    """The Outbox that writes this model's events; None uses the environment's settings."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _listen()

    def record(
        self,
        payload: Any,
        *,
        type: str | None = None,
        headers: Mapping[str, str] | None = None,
        topic: str | None = None,
    ) -> Event:
        """Queue an event: `type` defaults to the payload's `__event_type__` class attribute."""
        event_type = type or getattr(payload, "__event_type__", None)
        if not event_type:
            raise InvalidEventError(
                f"no event type for {payload.__class__.__name__}: pass type='...' or give the "
                "payload class an `__event_type__` attribute"
            )
        queued = Event(
            type=event_type,
            aggregate_type=self.outbox_aggregate_type(),
            aggregate_id="",  # the primary key may only be known at flush time
            payload=payload,
            headers=dict(headers or {}),
            topic=topic,
        )
        session = inspect(self).session
        transaction = None
        if session is not None:
            transaction = session.get_nested_transaction() or session.get_transaction()
            _register(session, self)
        self._outbox_queue().append(_Pending(next(_SEQUENCE), queued, transaction))
        flag_dirty(self)  # makes the next flush visit this object even if nothing else changed
        return queued

    @property
    def pending_events(self) -> list[Event]:
        """Events recorded and not yet written."""
        return [pending.event for pending in self._outbox_queue()]

    @classmethod
    def outbox_aggregate_type(cls) -> str:
        """`__outbox_aggregate_type__`, else the table name."""
        return cls.__outbox_aggregate_type__ or str(getattr(cls, "__tablename__", cls.__name__))

    def outbox_aggregate_id(self) -> str:
        """The primary key as text (composite keys joined with `:`)."""
        key = inspect(self).mapper.primary_key_from_instance(self)
        return ":".join("" if part is None else str(part) for part in key)

    def _outbox_queue(self) -> list[_Pending]:
        queue: list[_Pending] | None = self.__dict__.get(_PENDING)
        if queue is None:
            queue = []
            self.__dict__[_PENDING] = queue
        return queue


def _register(session: Session, aggregate: AggregateRoot) -> None:
    recorders: dict[int, AggregateRoot] = session.info.setdefault(_RECORDERS, {})
    recorders[id(aggregate)] = aggregate


def _after_attach(session: Session, instance: object) -> None:
    if isinstance(instance, AggregateRoot) and instance.__dict__.get(_PENDING):
        _register(session, instance)


def _aggregates(session: Session) -> list[AggregateRoot]:
    objects = chain(session.new, session.dirty, session.deleted)
    return [obj for obj in objects if isinstance(obj, AggregateRoot) and obj.__dict__.get(_PENDING)]


def _after_flush(session: Session, _context: UOWTransaction) -> None:
    queued: list[tuple[_Pending, AggregateRoot]] = []
    for aggregate in _aggregates(session):
        queued.extend((pending, aggregate) for pending in aggregate.__dict__.pop(_PENDING))
    queued.sort(key=lambda item: item[0].seq)
    by_outbox: dict[Outbox, list[Event]] = {}
    for pending, aggregate in queued:
        written = dataclasses.replace(pending.event, aggregate_id=aggregate.outbox_aggregate_id())
        by_outbox.setdefault(type(aggregate).__outbox__ or default_outbox(), []).append(written)
    for outbox, events in by_outbox.items():
        outbox.publish_many(session.connection(), events)


def _inside(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    # Events flushed inside the rolled-back (sub)transaction are gone with its rows; drop the
    # ones recorded in it and not flushed yet. An outermost rollback drops every queued event.
    # Every attached aggregate with queued events is in the registry (record(), after_attach).
    outermost = previous.parent is None
    recorders: dict[int, AggregateRoot] = session.info.get(_RECORDERS, {})
    for aggregate in recorders.values():
        queue = aggregate.__dict__.get(_PENDING)
        if queue:
            queue[:] = [p for p in queue if not outermost and not _inside(p.transaction, previous)]
    if outermost:
        recorders.clear()


def _after_commit(session: Session) -> None:
    session.info.pop(_RECORDERS, None)


def _listen() -> None:
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "after_soft_rollback", _after_soft_rollback)
        event.listen(Session, "after_attach", _after_attach)
        event.listen(Session, "after_commit", _after_commit)
