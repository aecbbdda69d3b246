"""stack/stack itself: idempotent `up`, `down` that leaves nothing behind, clear failures.

These run a second, isolated stack instance (own state dir and ports), so the shared stack the other
tests use is never disturbed.
"""

from __future__ import annotations

import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, unavailable
from tests.isolated import IsolatedStack, free_port, run_stack
from tests.services import probe_postgres


def our_processes(tag_dir: Path) -> list[str]:
    """Command lines of live processes that carry this instance's tag."""
    sys.path.insert(0, str(REPO / "stack"))
    from stacklib.settings import Settings

    tag = Settings.from_environment({"OUTBOX_STACK_DIR": str(tag_dir)}).instance_tag()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if f"outboxkit.stack={tag}" in line:
                found.append(line)
    return found


@pytest.fixture
def isolated_env() -> Iterator[dict[str, str]]:
    stack = IsolatedStack()
    yield stack.env
    stack.remove()


def test_up_is_idempotent_and_down_leaves_nothing(isolated_env: dict[str, str]) -> None:
    state = Path(isolated_env["OUTBOX_STACK_DIR"])
    first = run_stack(isolated_env, "up")
    assert first.returncode == 0, f"an isolated stack could not start: {first.stderr[-2000:]}"
    pids = {p.name: p.read_text() for p in (state / "run").glob("*.pid")}
    assert set(pids) == {"postgres.pid", "kafka.pid", "connect.pid"}
    assert run_stack(isolated_env, "status").returncode == 0

    second = run_stack(isolated_env, "up")
    assert second.returncode == 0, second.stderr
    assert {p.name: p.read_text() for p in (state / "run").glob("*.pid")} == pids, "up restarted a part"
    env_file = dict(line.split("=", 1) for line in (state / "stack.env").read_text().splitlines())
    assert probe_postgres(env_file["OUTBOX_DATABASE_URL"]) is None
    gc_log = state / "logs" / "kafka-gc.log"  # the broker's pauses, for latency tails
    assert gc_log.exists() and "Using G1" in gc_log.read_text(), "the broker writes no GC log"

    assert len(our_processes(state)) >= 3
    down = run_stack(isolated_env, "down")
    assert down.returncode == 0, down.stderr
    assert our_processes(state) == []
    assert not list((state / "run").glob("*.pid"))
    assert run_stack(isolated_env, "status").returncode != 0


def test_port_taken_fails_with_the_reason(isolated_env: dict[str, str]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = dict(isolated_env, OUTBOX_STACK_PG_PORT=str(port))
        done = run_stack(env, "up", "--only", "postgres", timeout=120)
    assert done.returncode == 1
    assert f"port {port}" in done.stderr
    assert "OUTBOX_STACK_PG_PORT" in done.stderr


def test_missing_java_fails_with_the_reason(isolated_env: dict[str, str], tmp_path: Path) -> None:
    # A PATH with Maven but without Java: the jars come from the cache, Java is what is missing.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = shutil.which("mvn")
    if mvn:
        (bin_dir / "mvn").symlink_to(mvn)
    env = dict(isolated_env, PATH=str(bin_dir))
    done = run_stack(env, "up", "--only", "kafka", timeout=300)
    assert done.returncode == 1
    assert "java" in done.stderr.lower()
    assert our_processes(Path(isolated_env["OUTBOX_STACK_DIR"])) == []


def test_unknown_part_is_refused(isolated_env: dict[str, str]) -> None:
    done = run_stack(isolated_env, "up", "--only", "zookeeper")
    assert done.returncode == 1
    assert "zookeeper" in done.stderr


def test_unreachable_service_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="unavailable in CI: nothing here"):
        unavailable("nothing here")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        unavailable("nothing here")
    assert probe_postgres(f"postgresql://outbox:outbox@127.0.0.1:{free_port()}/outbox") is not None


def test_a_daemon_not_yet_exec_ed_is_not_taken_for_dead(tmp_path: Path) -> None:
    # Between fork and exec a daemon's command line is still its parent's, without the stack's tag
    # (a loaded machine widens that window): waiting for it must not report it exited. Here the
    # tag appears only after a second, as when a slow exec finally happens.
    sys.path.insert(0, str(REPO / "stack"))
    from stacklib.processes import Daemon, wait_until

    daemon = Daemon("sleeper", tmp_path, "test-tag")
    script = 'sleep 1; exec "$0" -c "import time; time.sleep(30)" "$MARKER"'
    daemon.start(["sh", "-c", script, sys.executable], env={"MARKER": daemon.marker, "PATH": "/usr/bin:/bin"})
    ready_at = time.monotonic() + 1.5
    try:
        wait_until(
            lambda: None if time.monotonic() > ready_at else "not yet",
            what="sleeper",
            daemon=daemon,
            timeout=10,
        )
        assert daemon.pid() is not None
    finally:
        daemon.stop(timeout=5)
    assert daemon.pid() is None


def test_a_daemon_that_dies_while_starting_is_reported_with_its_log(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "stack"))
    from stacklib.processes import Daemon, wait_until
    from stacklib.settings import StackError

    daemon = Daemon("failing", tmp_path, "test-tag")
    daemon.start(["sh", "-c", "echo cannot bind; exit 3"])
    with pytest.raises(StackError, match=r"failing exited while starting(?s:.*)cannot bind"):
        wait_until(lambda: "not yet", what="failing", daemon=daemon, timeout=10)
