"""How every `outbox` command gets its settings and reports what went wrong.

Settings, for every command: flags > OUTBOX_... environment variables > the config file
(`--config FILE`, TOML: outbox settings at the top level, `[kafka]`, `[relay]`, `[cdc]` and
`[gateway]` tables) >
defaults. Flags of the `outbox` group (`--database-url`, `--bootstrap-servers`) and of the command
itself both count as flags; the command's win.

Errors: an OutboxError escaping a command (invalid settings included) is printed as
`Error: <message>` (passwords masked), exit code 1, no traceback: `CommandGroup` does it for every
command of a group, once.

The database URL: a command that changes things (migrate upgrade/downgrade, relay run, replay,
quarantine requeue/discard, projector run/rebuild, cdc register/remove) refuses to fall back to the
built-in default (the local stack's URL): its database must be given (flag, OUTBOX_DATABASE_URL or
the config file), and it says on stderr which one it uses and where that came from. A command that
only reads (status, list, current, a dry run) and the demo use the default, with a note on stderr.

Options every command shares: `CommandGroup` gives each command and subgroup added to it a
`--config FILE` (so `outbox --config F relay status` and `outbox relay status --config F` are
the same; the innermost wins); commands that print state take `--json` (JSON_OUTPUT).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic_settings import BaseSettings

from outbox.config import OutboxSettings
from outbox.errors import ConfigurationError, OutboxError
from outbox.urls import mask_url
from outboxkit.kafka.settings import KafkaSettings
from relay.settings import layered, read_config_file

T = TypeVar("T", bound=BaseSettings)
F = TypeVar("F", bound=Callable[..., Any])

CONFIG_KEY = "config_file"
"""Where `--config` leaves its file in the click context's object."""


class CommandGroup(click.Group):
    """A group whose commands (and subgroups: they are CommandGroups too) report an OutboxError as
    one `Error:` message with exit code 1 instead of a traceback."""

    group_class = type  # subgroups made with @group.group() are of this class as well

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not any(isinstance(p, click.Option) and "--config" in p.opts for p in cmd.params):
            CONFIG(cmd)
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OutboxError as err:
            raise click.ClickException(mask_url(str(err))) from err


def remembered_option(key: str, name: str, **attrs: Any) -> Callable[[F], F]:
    """An option `name` whose value (when given) is left in the click context's object under `key`,
    so that it counts wherever it is given: on a group or on one of its commands (innermost wins)."""

    def remember(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is not None:
            ctx.ensure_object(dict)[key] = value

    return click.option(name, expose_value=False, callback=remember, **attrs)


CONFIG = remembered_option(
    CONFIG_KEY,
    "--config",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="TOML file: outbox settings at the top level, the Kafka login under [kafka], relay settings "
    "under [relay], CDC settings under [cdc], the gateway's options under [gateway] (flags and "
    "OUTBOX_... variables override it).",
)
"""The `--config FILE` option; a group or command that takes it needs no parameter for it.
Every command of a CommandGroup gets it by itself."""

JSON_OUTPUT = click.option(
    "--json", "as_json", is_flag=True, help="Print the answer as one JSON object on stdout."
)
"""`--json`, for every command that prints state (parameter `as_json`)."""

LOG_LEVEL = click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
    help="Least important log records written (JSON lines on stderr, outboxkit.ops.logs).",
)
"""The daemons' `--log-level` option."""


class CommandSettings:
    """The settings of one command invocation, loaded with one precedence (see the module)."""

    def __init__(self, ctx: click.Context, **outbox_flags: Any) -> None:
        """`outbox_flags`: the command's own OutboxSettings flags (None: not given)."""
        given = dict(ctx.find_object(dict) or {})
        self.config_file: Path | None = given.pop(CONFIG_KEY, None)
        # The groups' flags (`outbox --database-url`, `cdc --connect-url`, ...), then the command's.
        group_flags = {k: v for k, v in given.items() if k in OutboxSettings.model_fields}
        self._flags = {**group_flags, **{k: v for k, v in outbox_flags.items() if v is not None}}
        self._file = read_config_file(self.config_file)

    @cached_property
    def outbox(self) -> OutboxSettings:
        """Where the services are (database, Kafka, Connect) and the write side's settings."""
        return layered(OutboxSettings, self._file[""], self._flags)

    @cached_property
    def kafka(self) -> KafkaSettings:
        """The cluster and its login: the file's `[kafka]` table, OUTBOX_KAFKA_... variables, and
        the brokers of `outbox` (`--bootstrap-servers`, OUTBOX_KAFKA_BOOTSTRAP_SERVERS or the
        file's top-level `kafka_bootstrap_servers`)."""
        brokers = self.outbox.kafka_bootstrap_servers
        return layered(KafkaSettings, self._file.get("kafka", {}), {"bootstrap_servers": brokers})

    @cached_property
    def database_source(self) -> str | None:
        """Where the database URL came from: `--database-url`, `OUTBOX_DATABASE_URL`, the config
        file; None: nowhere, it is the built-in default (the local stack's)."""
        if "database_url" in self._flags:
            return "--database-url"
        if "database_url" in layered(OutboxSettings, {}, {}).model_fields_set:
            return "OUTBOX_DATABASE_URL"
        if "database_url" in self._file[""]:
            return f"database_url in {self.config_file}"
        return None

    def database_url(self, *, changes: bool, say: bool = True) -> str:
        """The database URL of a command. `changes`: the command changes the database (or what a
        daemon publishes or projects), so the built-in default is refused; otherwise the default
        is used with a note on stderr. `say`: name the URL and its source on stderr (daemons, whose
        stderr is JSON logs, say False)."""
        url = self.outbox.database_url
        source = self.database_source
        shown = mask_url(url)
        command = click.get_current_context().command_path
        if source is None and changes:
            raise ConfigurationError(
                f"no database URL given, and `{command}` changes things: it does not fall back to the"
                f" built-in default ({shown}, the local development stack's). Name the database with"
                " --database-url, OUTBOX_DATABASE_URL or database_url in a --config file (the local"
                " stack's URL is what `stack/stack env` prints)."
            )
        if source is None:
            click.echo(
                f"note: no database URL given (--database-url, OUTBOX_DATABASE_URL or --config): "
                f"using the built-in default {shown}, the local development stack's",
                err=True,
            )
        elif say and changes:
            click.echo(f"database {shown} (from {source})", err=True)
        return url

    def log_database(self, log: logging.Logger) -> None:
        """A daemon's line saying which database it uses and where the URL came from (its stderr
        is JSON logs, where `database_url(say=True)`'s plain line does not belong)."""
        log.info(
            "database",
            extra={"database": mask_url(self.outbox.database_url), "from": self.database_source or "default"},
        )

    def table(self, name: str) -> dict[str, Any]:
        """The config file's `[name]` table as written (empty without a file or table)."""
        return dict(self._file.get(name, {}))

    def section(self, name: str, cls: type[T], **flags: Any) -> T:
        """A component's settings from the config file's `[name]` table, its OUTBOX_<NAME>_...
        variables and the command's `flags` (None: not given)."""
        return layered(cls, self._file.get(name, {}), flags)


def file_defaults(
    ctx: click.Context, settings: CommandSettings, name: str, values: dict[str, Any]
) -> dict[str, Any]:
    """A command's option `values` with the config file's `[name]` table filling those that came
    from their defaults: flags and their variables win over the file, the file over the defaults. A key
    that names no option, or a value the option refuses, is an error naming the file and the key."""
    table, config_file = settings.table(name), settings.config_file
    options = {p.name: p for p in ctx.command.params if isinstance(p, click.Option) and p.name in values}
    unknown = sorted(set(table) - set(options))
    if unknown:
        raise ConfigurationError(
            f"{config_file}: unknown keys in [{name}]: {unknown}; the keys are the options"
            f" of `{ctx.command_path}` with _ for -: {sorted(options)}"
        )
    merged = dict(values)
    for key, written in table.items():
        if ctx.get_parameter_source(key) is not click.core.ParameterSource.DEFAULT:
            continue
        option = options[key]
        value = [written] if option.multiple and isinstance(written, str) else written
        try:
            merged[key] = option.type_cast_value(ctx, value)
        except click.BadParameter as err:
            raise ConfigurationError(f"{config_file}: {key} = {value!r} is refused: {err.message}") from err
    return merged
