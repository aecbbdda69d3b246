"""Start daemons detached, remember them by pid file, and stop exactly those.

A pid file alone can lie (the pid may be reused after a reboot), so a process counts as ours only if
it is alive *and* its command line carries this stack instance's tag: every daemon we start gets
`outboxkit.stack=<tag>` as a JVM system property or a PostgreSQL setting.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .settings import StackError


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Daemon:
    """One long-running process of the stack, tracked by `run/<name>.pid`."""

    def __init__(self, name: str, state_dir: Path, tag: str) -> None:
        self.name = name
        self.state_dir = state_dir
        self.marker = f"outboxkit.stack={tag}"
        self.pid_file = state_dir / "run" / f"{name}.pid"
        self.log_file = state_dir / "logs" / f"{name}.log"
        self.started: subprocess.Popen[bytes] | None = None  # the child this call of `stack` started

    def pid(self) -> int | None:
        """The pid of our running process, or None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if alive(pid) and self.marker in cmdline(pid):
            return pid
        return None

    def start(
        self, argv: Sequence[str], *, user: str | None = None, env: dict[str, str] | None = None
    ) -> int:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"\n=== stack: starting {self.name} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # not killed with our terminal; no inherited pipes
                    user=user,
                    env=env,
                    cwd=self.state_dir,
                )
            except OSError as err:
                raise StackError(f"cannot start {self.name} ({argv[0]}): {err}") from err
        self.pid_file.write_text(f"{proc.pid}\n")
        self.started = proc
        return proc.pid

    def exited(self) -> bool:
        """Whether the daemon is gone. The child we just started is asked directly: until it has
        exec'ed, its command line is still ours, without the tag that `pid()` looks for."""
        if self.started is not None:
            return self.started.poll() is not None
        return self.pid() is None

    def stop(self, timeout: float = 30.0, sig: int = signal.SIGTERM) -> bool:
        """`sig` (SIGTERM), then SIGKILL after `timeout`; True if something was stopped."""
        pid = self.pid()
        if pid is None and self.started is not None and self.started.poll() is None:
            pid = self.started.pid  # started by this call and not exec'ed yet
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)
            while alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def tail(self, lines: int) -> str:
        try:
            return "".join(self.log_file.read_text(errors="replace").splitlines(True)[-lines:])
        except OSError:
            return ""


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def require_free(port: int, what: str, variable: str) -> None:
    if port_open(port):
        raise StackError(
            f"port {port} for {what} is taken by another process (not started by this stack). "
            f"Stop that process, or choose another port with {variable}=..."
        )


def wait_until(check: Callable[[], str | None], *, what: str, daemon: Daemon | None, timeout: float) -> None:
    """Poll `check` (None = ready, else the reason it is not) until ready, the daemon dies, or timeout."""
    deadline = time.monotonic() + timeout
    reason = "no answer yet"
    while time.monotonic() < deadline:
        reason = check() or ""
        if not reason:
            return
        if daemon is not None and daemon.exited():
            raise StackError(
                f"{what} exited while starting; last lines of {daemon.log_file}:\n{daemon.tail(25)}"
            )
        time.sleep(0.3)
    where = f"; log: {daemon.log_file}\n{daemon.tail(25)}" if daemon else ""
    raise StackError(f"{what} did not answer within {timeout:.0f}s ({reason}){where}")
