"""Every ```python block of README.md and docs/*.md runs against the stack (issue 13 item 16).

The convention, for whoever writes docs (new docs/*.md files are picked up by themselves):

- A ```python block is a complete script: its imports, and everything it names, are in it.
- Each block runs on its own, in a fresh `python` process whose working directory is an empty
  temporary directory, with OUTBOX_DATABASE_URL naming a fresh database where outboxkit's
  migrations are applied, and OUTBOX_KAFKA_BOOTSTRAP_SERVERS and OUTBOX_CONNECT_URL the stack's.
  Blocks share nothing, not even with the block before them in the same file.
- It creates what else it needs (its own tables, topics) and must exit 0 within 60 seconds.
- A fragment that cannot run that way is not a python block: show it as ```text (or ```sh for
  shell commands, ```toml, ```json, ...).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from outbox import migrations
from tests.conftest import REPO

BLOCK = re.compile(r"^```python[ \t]*\n(?P<code>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
TIMEOUT = 60


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def python_blocks() -> list[tuple[str, str]]:
    """(`file:line` of the block's first line of code, the code) of every python block."""
    found = []
    for path in documents():
        text = path.read_text()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code")) + 1
            found.append((f"{path.relative_to(REPO)}:{line}", match["code"]))
    return found


BLOCKS = python_blocks()


def test_the_docs_have_python_blocks_and_every_document_is_read() -> None:
    read = {where.split(":")[0] for where, _ in BLOCKS}
    assert {"README.md", "docs/write-side.md", "docs/projectors.md"} <= read
    assert all(path.exists() for path in documents())


@pytest.mark.parametrize(("where", "code"), BLOCKS, ids=[where for where, _ in BLOCKS])
def test_a_python_block_of_the_docs_runs(
    where: str,
    code: str,
    new_database: Callable[[], str],
    bootstrap_servers: str,
    connect_url: str,
    tmp_path: Path,
) -> None:
    database = new_database()
    migrations.upgrade(database)
    script = tmp_path / "block.py"
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOX_") and k != "PYTHONPATH"}
    env.update(
        OUTBOX_DATABASE_URL=database,
        OUTBOX_KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers,
        OUTBOX_CONNECT_URL=connect_url,
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"the block at {where} failed:\n{code}\n{result.stdout}\n{result.stderr}"
