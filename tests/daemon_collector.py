"""The garbage collector's settings inside a daemon (`outbox ... run`) started in a process of its
own: a thread reads them once the daemon is healthy (its loop runs), then stops it like an operator."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]

DAEMON = """
import gc, os, signal, sys, threading, time, urllib.request
import orjson
from outboxkit.cli import main

def watch(port):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        time.sleep(0.1)
    state = {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}
    print(orjson.dumps(state).decode(), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=watch, args=(int(sys.argv[1]),), daemon=True).start()
main(orjson.loads(sys.argv[2]), standalone_mode=False)
"""


def collector_of_daemon(command: Sequence[str], port: int, env: Mapping[str, str]) -> dict[str, Any]:
    """{"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()} inside the daemon that
    `outbox COMMAND` runs, its health served on `port`, once it is healthy."""
    done = subprocess.run(
        [sys.executable, "-c", DAEMON, str(port), orjson.dumps(list(command)).decode()],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=REPO,
        capture_output=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    state: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
    return state
