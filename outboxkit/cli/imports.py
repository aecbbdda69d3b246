"""Importing a user's `package.module:attribute` (a projector, a processor): from the current
directory (or `--app-dir DIR`) first, then the installed packages, as `python -m` and uvicorn do
(an installed console script has only its own bin/ on sys.path)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from outbox.errors import OutboxError
from outboxkit.cli.settings import remembered_option

T = TypeVar("T")

APP_DIR_KEY = "app_dir"

APP_DIR = remembered_option(
    APP_DIR_KEY,
    "--app-dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Import NAME's module from this directory (default: the current directory), then from the "
    "installed packages.",
)
"""`--app-dir DIR`, on a group or its commands (innermost wins)."""


def import_reference(load: Callable[[str], T], reference: str, param_hint: str = "NAME") -> T:
    """`load(reference)` with --app-dir (default: the current directory) first on sys.path; a
    module that cannot be found is a usage error saying where it was looked for."""
    ctx = click.get_current_context(silent=True)
    given = (ctx.find_object(dict) or {}).get(APP_DIR_KEY) if ctx is not None else None
    app_dir = Path(given or ".").resolve()
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    try:
        return load(reference)
    except OutboxError as err:
        hint = (
            f" (modules are imported from {app_dir} and the installed packages; --app-dir DIR names another)"
        )
        raise click.BadParameter(f"{err}{hint}", param_hint=param_hint) from err
