"""`outbox projector status|rebuild|run` through click's CliRunner, against the real services."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from confluent_kafka.admin import NewPartitions
from sqlalchemy import Engine

from outboxkit.cli.projector import projector as projector_group
from outboxkit.examples.sites.projection import build_projector
from tests.projectors.conftest import SitesTopic, project
from tests.services import kafka_admin

REFERENCE = "outboxkit.examples.sites.projection:from_environment"


CliEnv = Callable[[str, str], dict[str, str]]


@pytest.fixture
def cli_env(projector_db: str, bootstrap_servers: str) -> CliEnv:
    return lambda topic, name: {
        "OUTBOX_DATABASE_URL": projector_db,
        "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        "SITES_TOPIC": topic,
        "SITES_PROJECTOR": name,
    }


def test_status_and_rebuild(
    sites_db: Engine,
    bootstrap_servers: str,
    sites_topic: SitesTopic,
    unique: Callable[[str], str],
    cli_env: CliEnv,
) -> None:
    topic, _ = sites_topic("sites-cli", partitions=2, events=300, sites=20, seed=8)
    name = unique("cli")
    cli = CliRunner()
    env = cli_env(topic, name)

    before = cli.invoke(projector_group, ["status", REFERENCE], env=env)
    assert before.exit_code == 0, before.output
    assert f"projector {name} (group outboxkit-projector-{name})" in before.output
    assert before.output.strip().endswith("total lag 300")

    project(build_projector(topic, name=name), sites_db, bootstrap_servers, 300)
    after = cli.invoke(projector_group, ["status", REFERENCE], env=env)
    assert after.exit_code == 0, after.output
    lines = [line.split() for line in after.output.splitlines()[2:-1]]
    assert [(t, p) for t, p, *_ in lines] == [(topic, "0"), (topic, "1")]
    assert all(stored == high and lag == "0" for *_, stored, high, lag in lines)
    assert after.output.strip().endswith("total lag 0")

    rebuilt = cli.invoke(projector_group, ["rebuild", REFERENCE], env=env)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert f"rebuilt {name} from 300 records and swapped it in" in rebuilt.output


def test_unknown_projector_is_a_usage_error(cli_env: CliEnv) -> None:
    result = CliRunner().invoke(
        projector_group, ["status", "examples.nowhere:projector"], env=cli_env("t", "n")
    )
    assert result.exit_code == 2
    assert "cannot import 'examples.nowhere'" in result.output


def test_run_refuses_a_topic_whose_partition_count_changed(
    sites_db: Engine,
    bootstrap_servers: str,
    sites_topic: SitesTopic,
    unique: Callable[[str], str],
    cli_env: CliEnv,
) -> None:
    topic, _ = sites_topic("sites-grow", partitions=2, events=50, sites=5, seed=10)
    name = unique("grow")
    project(build_projector(topic, name=name), sites_db, bootstrap_servers, 50)
    admin = kafka_admin(bootstrap_servers)  # kept alive until the future resolves
    admin.create_partitions([NewPartitions(topic, 4)])[topic].result(30)

    result = CliRunner().invoke(projector_group, ["run", REFERENCE], env=cli_env(topic, name))
    assert result.exit_code == 1
    assert f"topic '{topic}' has 4 partitions" in result.output
    assert "Rebuild the read model" in result.output


def test_driver_errors_become_clear_messages(
    projector_db: str, cli_env: CliEnv, new_topic: Callable[..., str]
) -> None:
    from sqlalchemy.engine import make_url

    missing = (
        make_url(projector_db).set(database="outboxkit_no_such_db").render_as_string(hide_password=False)
    )
    env = {**cli_env(new_topic("sites-nodb"), "nodb"), "OUTBOX_DATABASE_URL": missing}
    result = CliRunner().invoke(projector_group, ["status", REFERENCE], env=env)
    assert result.exit_code == 1
    assert "status of projector 'nodb': database error" in result.output
    assert "outboxkit_no_such_db" in result.output


SERVICE_MODULE = """
from projectors import Projector

inventory = Projector("{name}", ["{topic}"])
"""


def test_name_is_imported_from_the_current_directory_or_the_app_dir(
    tmp_path: Path, cli_env: CliEnv, unique: Callable[[str], str], new_topic: Callable[..., str]
) -> None:
    """Issue 13 item 7: the installed `outbox` script has only its bin/ on sys.path, so a service's
    module in the current directory was not found (it needed PYTHONPATH=.)."""
    topic, name = new_topic("app-dir"), unique("app-dir")
    service = tmp_path / "service"
    service.mkdir()
    module = unique("inventory_projection").replace("-", "_")
    (service / f"{module}.py").write_text(SERVICE_MODULE.format(name=name, topic=topic))
    script = Path(sys.executable).parent / "outbox"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(cli_env(topic, name))

    def status(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), "projector", "status", *args], cwd=cwd, env=env, capture_output=True, text=True
        )

    here = status(f"{module}:inventory", cwd=service)
    assert here.returncode == 0, here.stderr
    assert f"projector {name} (group outboxkit-projector-{name})" in here.stdout
    elsewhere = status(f"{module}:inventory", "--app-dir", str(service), cwd=tmp_path)
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert f"projector {name}" in elsewhere.stdout
    missing = status(f"{module}:inventory", cwd=tmp_path)
    assert missing.returncode == 2
    assert f"cannot import {module!r}" in missing.stderr and "--app-dir" in missing.stderr
