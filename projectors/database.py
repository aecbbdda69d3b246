"""The projectors' database engine (SQLAlchemy 2 on psycopg 3), and where driver errors become ours."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import KafkaException
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import SQLAlchemyError

from outbox.urls import sqlalchemy_url
from projectors.errors import ProjectorError


def engine_for(database_url: str, **options: object) -> Engine:
    """An engine on psycopg 3 for any database URL the settings accept (outbox.urls.sqlalchemy_url)."""
    return create_engine(sqlalchemy_url(database_url), pool_pre_ping=True, **options)


@contextmanager
def driver_errors(what: str) -> Iterator[None]:
    """Translate SQLAlchemy/psycopg and Kafka errors escaping `what` into ProjectorError."""
    try:
        yield
    except SQLAlchemyError as err:
        raise ProjectorError(f"{what}: database error: {err}") from err
    except KafkaException as err:
        raise ProjectorError(f"{what}: Kafka error: {err}") from err
