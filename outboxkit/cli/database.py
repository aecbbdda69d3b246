"""The commands' PostgreSQL connections: psycopg errors become the command's error message."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import psycopg

from outbox.config import mask_url


@contextmanager
def connect(url: str, *, autocommit: bool = False) -> Iterator[psycopg.Connection[Any]]:
    """A connection for one command (committed on success); what PostgreSQL refuses, from the
    connection attempt to the last statement, is printed as one line without a traceback."""
    try:
        with psycopg.connect(url, autocommit=autocommit) as conn:
            yield conn
    except psycopg.OperationalError as err:
        raise click.ClickException(
            f"cannot connect to PostgreSQL at {mask_url(url)}: {mask_url(str(err).strip())}"
        ) from err
    except psycopg.Error as err:
        raise click.ClickException(f"PostgreSQL at {mask_url(url)}: {mask_url(str(err).strip())}") from err
