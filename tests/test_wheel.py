"""`outbox` as a user installs it: the wheel, installed (not editable, no dev extras) into a clean
virtualenv and run from a directory outside the repository, against the real stack.

Marked `wheel` (`pytest -m wheel` runs only these). The wheel and the virtualenv are made once per
session; the runtime dependencies come from the package index, through pip's cache.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from outbox import migrations
from outbox.schema import TABLES
from tests.conftest import REPO
from tests.service_app import write_service

pytestmark = pytest.mark.wheel

# The design card's top-level names; everything else lives under `outboxkit`.
TOP_LEVEL = {"outbox", "relay", "projectors", "outboxkit"}
INSTALL_TIMEOUT = 300


def wheel_packages() -> set[str]:
    """The packages pyproject's wheel target names."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    return set(pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])


def run(args: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Run a command; its output, or a failure that shows it."""
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(map(str, args))} exited {result.returncode}:\n{output}"
    return output


def pip(*args: str | Path, cwd: Path) -> str:
    """The dev venv's pip."""
    return run([sys.executable, "-m", "pip", *args], cwd=cwd, timeout=INSTALL_TIMEOUT)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # The dev venv's pip builds it the way `pip install .` and the Dockerfile do (isolated hatchling).
    pip("wheel", "--no-deps", "--quiet", "--wheel-dir", out, REPO, cwd=out)
    [built] = out.glob("outboxkit-*.whl")
    return built


@pytest.fixture(scope="session")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ directory of a clean virtualenv holding the wheel and its runtime dependencies only."""
    venv = tmp_path_factory.mktemp("venv")
    # No pip of its own: the dev venv's pip installs into it (`--python`), which saves seeding one.
    run([sys.executable, "-m", "venv", "--clear", "--without-pip", venv], cwd=venv)
    pip("--python", venv / "bin" / "python", "install", "--quiet", wheel, cwd=venv)
    return venv / "bin"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory outside the repository: nothing of it can be imported from there."""
    assert REPO not in tmp_path.parents
    return tmp_path


def user_env(**settings: str) -> dict[str, str]:
    """The environment of a user's shell: none of this checkout's import paths or virtualenv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(settings)
    return env


def test_the_wheel_ships_our_top_level_names_and_nothing_else(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    top = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top == TOP_LEVEL
    assert wheel_packages() == TOP_LEVEL
    # Typed packages, and the Alembic scripts inside `outbox` (where migrations.script_location looks).
    assert {f"{package}/py.typed" for package in TOP_LEVEL} <= set(names)
    versions = sorted(p.name for p in (REPO / "migrations" / "versions").glob("*.py"))
    assert versions and all(f"outbox/_migrations/versions/{v}" in names for v in versions)
    assert {"outbox/_migrations/env.py", "outbox/_migrations/script.py.mako"} <= set(names)
    # The monitoring files operators load into Prometheus and Grafana.
    shipped = {p.relative_to(REPO).as_posix() for p in (REPO / "outboxkit/ops/monitoring").rglob("*.*")}
    assert shipped and shipped <= set(names), shipped - set(names)


def test_the_wheel_carries_its_license_urls_and_classifiers(wheel: Path) -> None:
    """Apache-2.0 is declared, so its text ships in the wheel (issue 13 item 19), with the project's
    URLs and classifiers; the changelog is in the repository."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        headers = zf.read(metadata).decode()
        [license_file] = [n for n in names if n.endswith("/LICENSE") and ".dist-info/" in n]
        license_text = zf.read(license_file).decode()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    assert license_text == (REPO / "LICENSE").read_text()
    assert "License-Expression: Apache-2.0" in headers
    urls = [line for line in headers.splitlines() if line.startswith("Project-URL: ")]
    assert {u.split(": ", 1)[1].split(",")[0] for u in urls} >= {"Homepage", "Repository", "Changelog"}
    assert "Classifier: Programming Language :: Python :: 3.11" in headers
    assert "Classifier: Typing :: Typed" in headers
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert changelog.startswith("# Changelog") and "## [Unreleased]" in changelog


def test_every_module_imports_from_the_clean_venv(installed: Path, outside: Path) -> None:
    """No module needs a dev extra (pytest, yaml, ...) or a file of the checkout to import."""
    script = (
        "import importlib, pkgutil\n"
        "from outbox import migrations\n"
        f"for top in {sorted(TOP_LEVEL)!r}:\n"
        "    package = importlib.import_module(top)\n"
        "    print('package', top, package.__file__)\n"
        "    for info in pkgutil.walk_packages(package.__path__, top + '.'):\n"
        "        if not info.name.endswith('.__main__'):\n"
        "            importlib.import_module(info.name)\n"
        "print('migrations', migrations.script_location())\n"
    )
    output = run([installed / "python", "-c", script], cwd=outside, env=user_env())
    site_packages = installed.parent / "lib"
    paths = [Path(line.split()[-1]) for line in output.splitlines() if line.startswith(("package", "migr"))]
    assert len(paths) == len(TOP_LEVEL) + 1, output
    assert all(site_packages in path.parents for path in paths), output


def test_help_and_migrate_from_the_clean_venv(
    installed: Path, outside: Path, new_database: Callable[[], str]
) -> None:
    output = run([installed / "outbox", "--help"], cwd=outside, env=user_env())
    assert all(command in output for command in ("demo", "migrate", "relay", "projector", "cdc"))
    env = user_env(OUTBOX_DATABASE_URL=new_database())
    assert run([installed / "outbox", "migrate", "current"], cwd=outside, env=env).strip() == (
        "outbox schema at base"
    )
    run([installed / "outbox", "migrate", "upgrade"], cwd=outside, env=env)
    heads = ", ".join(migrations.head_revisions())
    assert run([installed / "outbox", "migrate", "current"], cwd=outside, env=env).strip() == (
        f"outbox schema at {heads}"
    )


@pytest.mark.parametrize("relay", ["polling", "cdc"])
def test_demo_runs_from_the_clean_venv(
    relay: str,
    installed: Path,
    outside: Path,
    database_url: str,
    bootstrap_servers: str,
    request: pytest.FixtureRequest,
) -> None:
    env = user_env(OUTBOX_DATABASE_URL=database_url, OUTBOX_KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers)
    if relay == "cdc":
        env["OUTBOX_CONNECT_URL"] = request.getfixturevalue("connect_url")
    output = run([installed / "outbox", "demo", "--relay", relay], cwd=outside, env=env, timeout=300)
    steps = [line.split(".")[0] for line in output.splitlines() if line[:1].isdigit()]
    assert sorted(set(steps)) == [str(n) for n in range(10)], output
    assert "6. shop: 4 events made the round trip, none of the rolled-back order" in output
    assert "'owner': 'cid', 'version': 5, 'installed_apps': ['blog']" in output
    assert output.rstrip().endswith("done.")


def wait_for_rows(url: str, table: str, count: int, timeout: float = 120) -> dict[str, int]:
    """The (sku -> quantity) rows of `table` once it has `count` of them."""
    from sqlalchemy import create_engine, pool, text

    engine = create_engine(migrations.sqlalchemy_url(url), poolclass=pool.NullPool)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as conn:
                rows = {sku: q for sku, q in conn.execute(text(f"SELECT sku, quantity FROM {table}"))}
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.5)
    finally:
        engine.dispose()


def daemon(args: list[str | Path], *, cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as stderr:
        return subprocess.Popen(
            [str(a) for a in args], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )


def stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert code == 0, log.read_text()


def test_a_service_built_on_the_wheel_runs_against_the_stack(
    installed: Path,
    outside: Path,
    new_database: Callable[[], str],
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    """Issue 13, "done when": a service built as a new user builds one, from the wheel alone: its own
    SQLAlchemy 2 models and Alembic environment with our migrations in it (autogenerate leaves our
    tables alone; `outbox migrate current` sees our revision there), the relay and a projector as
    daemons of the clean venv, then a rebuild of the read model."""
    service = write_service(outside / "inventory-service", ours="outbox:_migrations/versions")
    url, topic = new_database(), new_topic("inventory", partitions=2)
    env = user_env(
        OUTBOX_DATABASE_URL=url,
        OUTBOX_KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers,
        INVENTORY_TOPIC=topic,
        PYTHONPATH=str(service),  # the service's own package (issue 13 item 7 is about dropping this)
    )
    alembic, outbox = installed / "alembic", installed / "outbox"

    run([alembic, "upgrade", "heads"], cwd=service, env=env)  # our tables, through its environment
    first = ["--head", "base", "--branch-label", "inventory", "--version-path", "migrations/versions"]
    run([alembic, "revision", "--autogenerate", "-m", "inventory", *first], cwd=service, env=env)
    [script] = (service / "migrations" / "versions").glob("*_inventory.py")
    text = script.read_text()
    assert "op.create_table('items'" in text and "op.create_table('stock_view'" in text, text
    assert not [t for t in TABLES if f"'{t}'" in text], text
    run([alembic, "upgrade", "heads"], cwd=service, env=env)
    assert "No new upgrade operations detected" in run([alembic, "check"], cwd=service, env=env)
    heads = ", ".join(migrations.head_revisions())
    assert run([outbox, "migrate", "current"], cwd=service, env=env).strip() == (
        f"outbox schema at {heads} (in version table alembic_version of your own Alembic environment)"
    )

    run([installed / "python", "-m", "inventory.writer", "30"], cwd=service, env=env)
    logs = outside / "relay.log", outside / "projector.log"
    relay = daemon([outbox, "relay", "run"], cwd=service, env=env, log=logs[0])
    projector = daemon(
        [outbox, "projector", "run", "inventory.projection:projector"], cwd=service, env=env, log=logs[1]
    )
    try:
        rows = wait_for_rows(url, "stock_view", 30)
    finally:
        stop(relay, logs[0])
        stop(projector, logs[1])
    assert rows == {f"sku-{n}": n for n in range(30)}, (logs[0].read_text(), logs[1].read_text())

    rebuilt = run([outbox, "projector", "rebuild", "inventory.projection:projector"], cwd=service, env=env)
    assert "rebuilt inventory-stock from" in rebuilt, rebuilt
    assert wait_for_rows(url, "stock_view", 30, timeout=0) == rows
