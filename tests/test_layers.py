"""Imports only point down (DESIGN.md, "Floors"): each package may import only the floors below it.

Read from the source with `ast`, so a lazy import inside a function counts as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# package -> the toolkit's packages it may import (besides itself)
FLOORS: dict[str, set[str]] = {
    "outbox": set(),
    "outboxkit.kafka": {"outbox"},
    "outboxkit.ops": {"outbox"},
    "relay": {"outbox", "outboxkit.kafka", "outboxkit.ops"},
    "projectors": {"outbox", "outboxkit.kafka", "outboxkit.ops"},
    "outboxkit.processors": {"outbox", "outboxkit.kafka", "outboxkit.ops"},
    "outboxkit.kv": {"outbox", "outboxkit.kafka", "outboxkit.ops"},
}
OURS = ("outbox", "outboxkit", "relay", "projectors")


def floor_of(module: str) -> str | None:
    """The floor a module of ours belongs to ('outboxkit.kafka.clients' -> 'outboxkit.kafka',
    'outboxkit.cli.relay' -> 'outboxkit.cli'); None for other libraries."""
    for floor in sorted(FLOORS, key=len, reverse=True):
        if module == floor or module.startswith(floor + "."):
            return floor
    parts = module.split(".")
    if parts[0] == "outboxkit":
        return ".".join(parts[:2])
    return parts[0] if parts[0] in OURS else None


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules(floor: str) -> list[Path]:
    folder = REPO.joinpath(*floor.split("."))
    return sorted(folder.rglob("*.py")) if folder.is_dir() else []


@pytest.mark.parametrize("floor", sorted(FLOORS))
def test_imports_point_down(floor: str) -> None:
    wrong = []
    for path in modules(floor):
        for module in sorted(imports_of(path)):
            target = floor_of(module)
            if target not in (None, floor, "outboxkit") and target not in FLOORS[floor]:
                wrong.append(f"{path.relative_to(REPO)} imports {module}")
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(wrong)


def test_the_check_sees_an_import_that_points_up() -> None:
    assert floor_of("outboxkit.cli.relay") == "outboxkit.cli" not in FLOORS["relay"]
    assert floor_of("projectors.runtime") == "projectors" not in FLOORS["relay"]
    assert floor_of("outboxkit.kafka.clients") == "outboxkit.kafka" in FLOORS["projectors"]
    assert floor_of("confluent_kafka") is None
