"""docs/deployment.md: its manifests parse, name commands and options the `outbox` command has, and
set only variables our settings read (a renamed option or variable would leave a deployment broken)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from pydantic_settings import BaseSettings

from outbox.config import OutboxSettings
from outboxkit.cli import main
from outboxkit.kafka.settings import KafkaSettings
from relay.cdc import CdcSettings
from relay.settings import RelaySettings

DOC = Path(__file__).resolve().parent.parent / "docs" / "deployment.md"
SETTINGS: tuple[type[BaseSettings], ...] = (OutboxSettings, RelaySettings, KafkaSettings, CdcSettings)


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def manifests() -> list[dict[str, Any]]:
    return [doc for block in blocks("yaml") for doc in yaml.safe_load_all(block) if doc]


def containers() -> Iterator[dict[str, Any]]:
    for manifest in manifests():
        yield from manifest["spec"]["template"]["spec"]["containers"]


def known_variables() -> set[str]:
    names = set()
    for settings in SETTINGS:
        prefix = settings.model_config.get("env_prefix", "")
        names |= {f"{prefix}{field}".upper() for field in settings.model_fields}
    return names


def commands() -> list[list[str]]:
    """Every `outbox ...` command line of the doc: container args and systemd ExecStart lines."""
    found = [c["args"] for c in containers()]
    for block in blocks("ini"):
        for line in block.splitlines():
            if line.startswith("ExecStart="):
                words = shlex.split(line.removeprefix("ExecStart="))
                assert words[0].endswith("/outbox"), line
                found.append([w.replace("%i", "1").replace("%H", "host") for w in words[1:]])
    return found


def test_the_manifests_are_a_deployment_and_a_migration_job_probing_healthz() -> None:
    kinds = [m["kind"] for m in manifests()]
    assert kinds == ["Deployment", "Job"]
    relay = next(iter(containers()))
    port = {p["name"]: p["containerPort"] for p in relay["ports"]}["metrics"]
    env = {e["name"]: e.get("value") for e in relay["env"]}
    assert int(env["OUTBOX_RELAY_METRICS_PORT"]) == port == RelaySettings().metrics_port
    for probe in ("readinessProbe", "livenessProbe"):
        assert relay[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}


def test_every_variable_the_doc_sets_is_one_our_settings_read() -> None:
    set_in_doc = {e["name"] for c in containers() for e in c.get("env", [])}
    for block in blocks("sh"):
        set_in_doc |= {line.split("=")[0] for line in block.splitlines() if re.match(r"^OUTBOX_\w+=", line)}
    assert set_in_doc and not set_in_doc - known_variables(), set_in_doc - known_variables()


@pytest.mark.parametrize("args", commands(), ids=lambda a: " ".join(a[:2]))
def test_every_command_line_is_one_the_outbox_command_accepts(args: list[str]) -> None:
    # --help after the arguments: click parses the options named before it, refusing unknown ones,
    # without running the command; the positional NAME of `projector run` is given.
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0, result.output
