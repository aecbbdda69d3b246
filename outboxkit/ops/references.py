"""What a daemon runs, named on its command line: `package.module:attribute`, resolved to an object
of the component's kind (a Projector, a Processor). The attribute may also be a function without
arguments that returns one (a factory reading its settings from the environment)."""

from __future__ import annotations

import importlib
from typing import Any, TypeVar

from outbox.errors import OutboxError

T = TypeVar("T")


def load_reference(reference: str, kind: type[T], error: type[OutboxError]) -> T:
    """The `kind` named by `reference`; raises `error` saying what is wrong with the reference."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise error(f"{reference!r}: expected 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise error(f"{reference!r}: cannot import {module_name!r}: {err}") from err
    found: Any = module
    for part in attribute.split("."):
        found = getattr(found, part, None)
    if callable(found) and not isinstance(found, kind):
        found = found()
    if not isinstance(found, kind):
        raise error(f"{reference!r} is {type(found).__name__}, not a {kind.__name__}")
    return found
