"""Code run in a fresh interpreter in which an optional dependency cannot be imported."""

from __future__ import annotations

import subprocess
import sys


def run_without(module: str, code: str) -> str:
    """Run `code` where `import <module>` fails (as without its extra); its stdout, or AssertionError
    with its stderr when it failed."""
    program = f"import sys; sys.modules[{module!r}] = None\n{code}"
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout
