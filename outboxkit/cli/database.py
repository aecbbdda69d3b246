"""The commands' PostgreSQL connections: psycopg errors become the command's error message."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import psycopg

from outbox.urls import postgres_problem


@contextmanager
def connect(url: str, *, autocommit: bool = False) -> Iterator[psycopg.Connection[Any]]:
    """A connection for one command (committed on success); what PostgreSQL refuses, from the
    connection attempt to the last statement, is printed as one line without a traceback."""
    try:
        with psycopg.connect(url, autocommit=autocommit) as conn:
            yield conn
    except psycopg.Error as err:
        raise click.ClickException(postgres_problem(url, err)) from err
