"""The write side works when OpenTelemetry is not installed (capture from a span: test_publish.py)."""

from __future__ import annotations

import subprocess
import sys


def test_write_side_without_opentelemetry_installed() -> None:
    # A fresh interpreter in which `import opentelemetry` fails, as without the `otel` extra.
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from outbox import Event\n"
        "from outbox.tracing import current_traceparent\n"
        "assert current_traceparent() is None\n"
        "assert Event(type='t', aggregate_type='a', aggregate_id='1', payload={}).traceparent is None\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
