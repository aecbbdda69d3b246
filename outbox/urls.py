"""Database URLs: the forms accepted, the form each client needs, and hiding passwords in messages.

outboxkit talks to PostgreSQL through psycopg 3 (libpq) and, for migrations and projectors, through
SQLAlchemy on psycopg. libpq takes `postgresql://`, `postgres://` and `key=value` strings; SQLAlchemy
needs `postgresql+psycopg://`. Users write any of these, so the settings keep the libpq form and
`sqlalchemy_url()` derives SQLAlchemy's.
"""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import URL

from outbox.errors import ConfigurationError
from outbox.schema import RUN_MIGRATIONS

MASK = "***"
# scheme://user:PASSWORD@ - the password runs to the last '@' before the path, query or a quote.
_USERINFO_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s'\"]*:)[^\s'\"/?#]*@")
# password=... in a URL query or a libpq key=value string, quoted ('...' with \ escapes) or bare.
_KEYWORD_PASSWORD = re.compile(
    r"(?P<head>(?<![\w.])(?:ssl)?password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s&'\"]*)", re.IGNORECASE
)
_SCHEMES = ("postgresql", "postgres")
_LIBPQ_DRIVERS = ("psycopg", "psycopg2")  # SQLAlchemy drivers over libpq: the same URL parameters


def mask_url(text: str) -> str:
    """`text` with the password of every URL or `password=` in it replaced by `***`: for every
    message, log line and CLI output that may show a database, Kafka or Connect URL."""
    text = _USERINFO_PASSWORD.sub(rf"\g<head>{MASK}@", text)
    return _KEYWORD_PASSWORD.sub(rf"\g<head>{MASK}", text)


def libpq_url(url: str) -> str:
    """`url` as psycopg connects with it: a `postgresql+psycopg://` (or `+psycopg2`) URL loses its
    driver; `postgresql://`, `postgres://` and `key=value` strings are kept as they are.

    Raises ConfigurationError, with the password masked, for anything libpq would refuse.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError("the database URL is empty: set it, e.g. postgresql://user@host:5432/dbname")
    scheme, sep, rest = url.partition("://")
    if sep and not re.search(r"[\s=]", scheme):  # a URL, not key=value pairs
        base, _, driver = scheme.partition("+")
        if base not in _SCHEMES:
            raise ConfigurationError(
                f"the database URL {mask_url(url)!r} is not a PostgreSQL URL: write "
                "postgresql://user@host:5432/dbname with the password after the user (postgres:// and "
                "postgresql+psycopg:// work too) or libpq's 'host=... dbname=...' form"
            )
        if driver and driver not in _LIBPQ_DRIVERS:
            raise ConfigurationError(
                f"the database URL {mask_url(url)!r} names the driver {driver!r}, but outboxkit "
                "connects with psycopg 3: write postgresql:// or postgresql+psycopg://"
            )
        url = f"{base}://{rest}"
    try:
        conninfo_to_dict(url)
    except psycopg.Error as err:
        # `from None`: libpq's message quotes the whole string, password included; ours masks it.
        raise ConfigurationError(
            f"the database URL {mask_url(url)!r} is not one libpq accepts: "
            f"{mask_url(str(err).strip())}; see "
            "https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING"
        ) from None
    return url


def sqlalchemy_url(url: str) -> str:
    """`url` (any form libpq_url() accepts) for SQLAlchemy with psycopg 3: `postgresql+psycopg://`."""
    url = libpq_url(url)
    _, sep, rest = url.partition("://")
    if sep:
        return f"postgresql+psycopg://{rest}"
    # key=value: SQLAlchemy's psycopg dialect hands the query parameters to psycopg.connect.
    query = {key: str(value) for key, value in conninfo_to_dict(url).items() if value is not None}
    return URL.create("postgresql+psycopg", query=query).render_as_string(hide_password=False)


def postgres_problem(url: str, err: psycopg.Error) -> str:
    """What PostgreSQL at `url` refused, in one line with every password masked: a failed
    connection says so; a missing outboxkit table says what to run."""
    # The primary message only: the server's LINE/caret context spans lines and quotes SQL.
    said = mask_url(" ".join((err.diag.message_primary or str(err)).split()))
    if isinstance(err, psycopg.OperationalError):
        return f"cannot connect to PostgreSQL at {mask_url(url)}: {said}"
    if isinstance(err, psycopg.errors.UndefinedTable):
        said += f" ({RUN_MIGRATIONS})"
    return f"PostgreSQL at {mask_url(url)}: {said}"
