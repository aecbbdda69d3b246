"""Options every `outbox` command shares (issue 13 item 15): `--version`, `--config` on every
command and group, `--json` on every command that prints state (docs/operations.md lists them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

import click
import orjson
from click.testing import CliRunner

from outboxkit.cli import main

STATE_COMMANDS = {
    "migrate current",
    "relay status",
    "relay quarantine list",
    "projector status",
    "cdc status",
    "replay",
}
"""Commands that print where something stands: each takes --json."""


def commands(group: click.Group = main, path: str = "") -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        full = f"{path} {name}".strip()
        yield full, command
        if isinstance(command, click.Group):
            yield from commands(command, full)


def options(command: click.Command) -> set[str]:
    return {opt for param in command.params if isinstance(param, click.Option) for opt in param.opts}


def test_outbox_version_prints_the_installed_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"outbox {version('outboxkit')}\n"


def test_every_command_and_group_takes_config() -> None:
    missing = [name for name, command in commands() if "--config" not in options(command)]
    assert not missing, f"no --config on: {missing}"
    assert "--config" in options(main)


def test_every_command_that_prints_state_takes_json() -> None:
    found = dict(commands())
    assert set(found) >= STATE_COMMANDS
    assert [name for name in sorted(STATE_COMMANDS) if "--json" not in options(found[name])] == []


def test_a_config_file_given_to_the_command_itself_is_read(tmp_path: Path) -> None:
    """`outbox projector status NAME --config F` (the option after the command) reads F too."""
    bad = tmp_path / "outbox.toml"
    bad.write_text('database_url = "mysql://shop:hunter2@db/shop"\n')
    name = "outboxkit.examples.sites.projection:projector"
    result = CliRunner().invoke(  # the file's URL, not one of the environment, is the one refused
        main, ["projector", "status", name, "--config", str(bad)], env={"OUTBOX_DATABASE_URL": None}
    )
    assert result.exit_code == 1, result.output
    assert "database_url (OUTBOX_DATABASE_URL)" in result.output and "hunter2" not in result.output


def test_migrate_current_and_quarantine_list_print_json(new_database: Callable[[], str]) -> None:
    url = new_database()
    runner = CliRunner()
    before = runner.invoke(main, ["--database-url", url, "migrate", "current", "--json"])
    assert before.exit_code == 0, before.output
    answer = orjson.loads(before.stdout)
    assert answer["revisions"] == [] and answer["heads"]
    assert runner.invoke(main, ["--database-url", url, "migrate", "upgrade"]).exit_code == 0
    after = orjson.loads(runner.invoke(main, ["--database-url", url, "migrate", "current", "--json"]).stdout)
    assert after["revisions"] == answer["heads"]
    listed = runner.invoke(main, ["--database-url", url, "relay", "quarantine", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert orjson.loads(listed.stdout) == {"events": []}
