"""The projectors' database engine: SQLAlchemy 2 on psycopg 3."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url


def engine_for(database_url: str, **options: object) -> Engine:
    """An engine for a `postgresql://` URL (any driver given in the URL is replaced by psycopg 3)."""
    url = make_url(database_url).set(drivername="postgresql+psycopg")
    return create_engine(url, pool_pre_ping=True, **options)
