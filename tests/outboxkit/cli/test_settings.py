"""How every `outbox` command loads settings and reports errors (outboxkit/cli/settings.py)."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from outbox.errors import OutboxError
from outboxkit.cli import main
from outboxkit.cli.settings import CONFIG, CommandGroup, CommandSettings
from relay.settings import RelaySettings


@click.group(cls=CommandGroup)
@click.option("--database-url")
@CONFIG
@click.pass_context
def top(ctx: click.Context, database_url: str | None) -> None:
    if database_url:
        ctx.ensure_object(dict)["database_url"] = database_url


@top.group()
def sub() -> None:
    pass


@sub.command()
@CONFIG
@click.option("--source")
@click.option("--batch-size", type=int)
@click.pass_context
def show(ctx: click.Context, source: str | None, batch_size: int | None) -> None:
    settings = CommandSettings(ctx, source=source)
    relay = settings.section("relay", RelaySettings, batch_size=batch_size)
    outbox = settings.outbox
    click.echo(
        f"{outbox.database_url} {outbox.source} {outbox.retention_days} {relay.batch_size} {relay.shards}"
    )


@sub.command()
@click.pass_context
def kafka(ctx: click.Context) -> None:
    click.echo(CommandSettings(ctx).kafka.describe())


@sub.command()
def fail() -> None:
    raise OutboxError("the broker at kafka://user:hunter2@broker:9092 said no")


@pytest.fixture(autouse=True)
def no_outbox_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the variables a test sets: the developer's OUTBOX_... would win over the file."""
    for name in [n for n in os.environ if n.startswith("OUTBOX_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "outbox.toml"
    path.write_text(
        'database_url = "postgresql://file/db"\nsource = "from-file"\nretention_days = 9\n'
        "[relay]\nbatch_size = 10\nshards = 4\n"
    )
    return path


def test_flags_then_environment_then_the_file_then_defaults(config: Path) -> None:
    env = {"OUTBOX_SOURCE": "from-env", "OUTBOX_RELAY_BATCH_SIZE": "20"}
    result = CliRunner().invoke(top, ["--config", str(config), "sub", "show"], env=env)
    assert result.output.split() == ["postgresql://file/db", "from-env", "9", "20", "4"], result.output
    result = CliRunner().invoke(
        top,
        ["--database-url", "postgresql://flag/db", "sub", "show", "--config", str(config),
         "--source", "from-flag", "--batch-size", "30"],
        env=env,
    )  # fmt: skip
    assert result.output.split() == ["postgresql://flag/db", "from-flag", "9", "30", "4"], result.output
    result = CliRunner().invoke(top, ["sub", "show"])
    assert result.output.split() == ["postgresql://outbox:outbox@127.0.0.1:5432/outbox", "outboxkit", "7",
                                     "4000", "1"], result.output  # fmt: skip


def test_an_outbox_error_is_one_message_with_exit_code_1_and_no_password() -> None:
    result = CliRunner().invoke(top, ["sub", "fail"])
    assert result.exit_code == 1
    assert result.output == "Error: the broker at kafka://user:***@broker:9092 said no\n"
    assert isinstance(result.exception, SystemExit)


def test_invalid_settings_name_the_setting_its_variable_and_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[relay]\nbatch_sise = 10\n")
    result = CliRunner().invoke(top, ["--config", str(bad), "sub", "show"])
    assert (
        result.exit_code == 1
        and "unknown RelaySettings keys in the config file: ['batch_sise']" in result.output
    )
    result = CliRunner().invoke(top, ["sub", "show"], env={"OUTBOX_RETENTION_DAYS": "0"})
    assert result.exit_code == 1
    assert "retention_days (OUTBOX_RETENTION_DAYS)" in result.output and "Traceback" not in result.output


def test_every_outbox_command_takes_the_config_file(tmp_path: Path) -> None:
    """The `outbox` group's --config reaches a command that has none of its own: here a database
    URL in the file that libpq refuses is what `projector status` complains about."""
    bad = tmp_path / "outbox.toml"
    bad.write_text('database_url = "mysql://shop:hunter2@db/shop"\n')
    result = CliRunner().invoke(
        main, ["--config", str(bad), "projector", "status", "outboxkit.examples.sites.projection:projector"]
    )
    assert result.exit_code == 1, result.output
    assert "database_url (OUTBOX_DATABASE_URL)" in result.output and "hunter2" not in result.output


def test_the_kafka_login_comes_from_the_kafka_table_and_the_brokers_from_the_outbox_settings(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.toml"
    path.write_text(
        'kafka_bootstrap_servers = "k1:9092"\n'
        '[kafka]\nsecurity_protocol = "sasl_plaintext"\nsasl_mechanism = "PLAIN"\nsasl_username = "file"\n'
        'sasl_password = "from-file"\n'
    )
    result = CliRunner().invoke(
        top, ["--config", str(path), "sub", "kafka"], env={"OUTBOX_KAFKA_SASL_USERNAME": "env"}
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        "k1:9092 (sasl.mechanism=PLAIN sasl.password=*** sasl.username=env security.protocol=sasl_plaintext)"
    )
