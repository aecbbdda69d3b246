"""Our migrations: via the `outbox migrate` group, and from a service's own Alembic environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, pool

from outbox import migrations
from outboxkit.cli.migrate import migrate

REPO = Path(__file__).resolve().parents[2]
[HEAD] = migrations.head_revisions()


def tables(url: str) -> set[str]:
    engine = create_engine(migrations.sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_cli_upgrade_current_downgrade(new_database: Callable[[], str]) -> None:
    url = new_database()
    runner = CliRunner()

    result = runner.invoke(migrate, ["current", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "outbox schema at base"

    result = runner.invoke(migrate, ["upgrade", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"outbox schema at {HEAD}"  # stderr names the database
    assert {"outbox_events", "outbox_alembic_version"} <= tables(url)

    result = runner.invoke(migrate, ["upgrade", "--database-url", url])  # idempotent
    assert result.exit_code == 0, result.output

    result = runner.invoke(migrate, ["downgrade", "base", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("base")
    assert "outbox_events" not in tables(url)


def test_cli_takes_the_url_from_the_environment(new_database: Callable[[], str]) -> None:
    url = new_database()
    result = CliRunner().invoke(migrate, ["upgrade"], env={"OUTBOX_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert migrations.current(url) == migrations.head_revisions()


def test_cli_reports_an_unreachable_database() -> None:
    url = "postgresql://nobody:wrong@127.0.0.1:1/none"
    result = CliRunner().invoke(migrate, ["upgrade", "--database-url", url])
    assert result.exit_code == 1
    assert "Error: upgrade: migration failed" in result.output


def test_python_dash_m(new_database: Callable[[], str]) -> None:
    url = new_database()
    run = [sys.executable, "-m", "outboxkit.cli.migrate"]
    upgrade = subprocess.run(
        [*run, "upgrade", "--database-url", url], check=False, capture_output=True, text=True
    )
    assert upgrade.returncode == 0, upgrade.stderr
    current = subprocess.run(
        [*run, "current", "--database-url", url], check=False, capture_output=True, text=True
    )
    assert current.stdout.strip() == f"outbox schema at {HEAD}"


SERVICE_ENV = """
from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
"""

SERVICE_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "svc_0001"
down_revision = None
branch_labels = ("shop",)
depends_on = None


def upgrade():
    op.create_table("shop_orders", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("shop_orders")
"""


def test_from_a_service_alembic_environment(tmp_path: Path, new_database: Callable[[], str]) -> None:
    url = migrations.sqlalchemy_url(new_database())
    (tmp_path / "versions").mkdir()
    (tmp_path / "env.py").write_text(SERVICE_ENV)
    (tmp_path / "versions" / "svc_0001.py").write_text(SERVICE_REVISION)
    config = Config()
    config.set_main_option("script_location", str(tmp_path))
    config.set_main_option("sqlalchemy.url", url)
    # The recipe of docs/write-side.md: our versions directory next to the service's own.
    config.set_main_option("path_separator", "os")
    config.set_main_option(
        "version_locations",
        os.pathsep.join([str(tmp_path / "versions"), str(migrations.versions_location())]),
    )

    command.upgrade(config, "heads")
    assert {"shop_orders", "outbox_events", "alembic_version"} <= tables(url)
    assert "outbox_alembic_version" not in tables(url)  # the service's version table holds ours

    command.downgrade(config, "outboxkit@base")  # our branch only
    assert "outbox_events" not in tables(url)
    assert "shop_orders" in tables(url)

    command.upgrade(config, "outboxkit@head")
    assert "outbox_events" in tables(url)


def test_locator_finds_the_scripts_in_a_wheel_layout(tmp_path: Path) -> None:
    # What the wheel holds: the package, with migrations/ force-included as outbox/_migrations.
    shutil.copytree(REPO / "outbox", tmp_path / "outbox", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "migrations", tmp_path / "outbox" / "_migrations")
    found = subprocess.run(
        [sys.executable, "-c", "from outbox import migrations; print(migrations.versions_location())"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()) == tmp_path / "outbox" / "_migrations" / "versions"


def test_locator_finds_the_scripts_in_a_source_checkout() -> None:
    assert migrations.script_location() == REPO / "migrations"
    assert (migrations.versions_location() / "outboxkit_0001_outbox_events.py").is_file()
