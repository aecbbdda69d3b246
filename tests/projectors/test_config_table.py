"""`outbox projector run` takes its options from the config file's `[projector]` table too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from outboxkit.cli import main
from tests.daemons import json_log
from tests.projectors.conftest import SitesTopic, projector_process, wait_until

REFERENCE = "outboxkit.examples.sites.projection:from_environment"


def test_the_config_files_projector_table_sets_run_options_that_flags_override(
    sites_db: Engine,
    projector_db: str,
    bootstrap_servers: str,
    sites_topic: SitesTopic,
    unique: Callable[[str], str],
    tmp_path: Path,
) -> None:
    topic, _history = sites_topic("sites-table", partitions=1, events=10, sites=2, seed=5)
    config, log = tmp_path / "outbox.toml", tmp_path / "projector.log"
    config.write_text('[projector]\nbatch_size = 300\non_failure = "stop"\ninstance_id = "from-file"\n')
    env = {"SITES_TOPIC": topic, "SITES_PROJECTOR": unique("table")}
    args = ("--config", str(config), "--batch-size", "7")
    proc = projector_process(REFERENCE, projector_db, bootstrap_servers, env, *args, log=log)
    try:
        wait_until(lambda: '"projector starting"' in log.read_text(), what="the starting line")
    finally:
        proc.terminate()
        proc.wait(30)
    started = next(e for e in json_log(log.read_text()) if e["message"] == "projector starting")
    # the flag's 7 over the file's 300; the file's values over the projector's own config
    assert (started["batch_size"], started["on_failure"], started["instance_id"]) == (7, "stop", "from-file")


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ("batch_sise = 5", "unknown keys in [projector]: ['batch_sise']"),
        ("batch_size = 0", "batch_size = 0 is refused"),
    ],
)
def test_a_bad_projector_table_is_refused_before_anything_starts(
    projector_db: str, tmp_path: Path, table: str, said: str
) -> None:
    config = tmp_path / "outbox.toml"
    config.write_text(f"[projector]\n{table}\n")
    result = CliRunner().invoke(
        main,
        ["projector", "run", REFERENCE, "--config", str(config)],
        env={"OUTBOX_DATABASE_URL": projector_db, "SITES_TOPIC": "t", "SITES_PROJECTOR": "p"},
    )
    assert result.exit_code == 1, result.output
    assert said in result.output and str(config) in result.output, result.output
