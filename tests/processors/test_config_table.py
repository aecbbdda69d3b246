"""`outbox processor run` takes its options from the config file's `[processor]` table too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from outboxkit.cli import main
from tests.daemons import json_log
from tests.processors.conftest import wait_for
from tests.processors.harness import REFERENCE, Processes


def test_the_config_files_processor_table_sets_run_options_that_flags_override(
    bootstrap_servers: str, new_topic: Callable[..., str], unique: Callable[[str], str], tmp_path: Path
) -> None:
    topic, output = new_topic("table-in"), new_topic("table-out")
    config = tmp_path / "outbox.toml"
    config.write_text('[processor]\ntransaction_ms = 250\ntransaction_records = 77\non_failure = "stop"\n')
    env = {
        "PROCESSOR_NAME": unique("table"),
        "PROCESSOR_TOPIC": topic,
        "PROCESSOR_OUTPUT": output,
        "PROCESSOR_DLQ": f"{topic}.dlq",
    }
    run = Processes(bootstrap_servers, env, tmp_path)
    try:
        instance = run.start(None, "--config", str(config), "--transaction-ms", "50")
        wait_for(lambda: '"processor starting"' in instance.log.read_text(), "the starting line", 60)
        instance.stop()
    finally:
        run.close()
    started = next(e for e in json_log(instance.log.read_text()) if e["message"] == "processor starting")
    # the flag's 50 over the file's 250; the file's values over the processor's own config
    assert (started["transaction_ms"], started["transaction_records"], started["on_failure"]) == (
        50,
        77,
        "stop",
    )


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ("transaction_sm = 5", "unknown keys in [processor]: ['transaction_sm']"),
        ("transaction_ms = 0", "transaction_ms = 0 is refused"),
        ('on_failure = "retry"', "on_failure = 'retry' is refused"),
    ],
)
def test_a_bad_processor_table_is_refused_before_anything_starts(
    tmp_path: Path, table: str, said: str
) -> None:
    config = tmp_path / "outbox.toml"
    config.write_text(f"[processor]\n{table}\n")
    env = {"PROCESSOR_NAME": "p", "PROCESSOR_TOPIC": "t", "PROCESSOR_OUTPUT": "o", "PROCESSOR_DLQ": "d"}
    result = CliRunner().invoke(main, ["processor", "run", REFERENCE, "--config", str(config)], env=env)
    assert result.exit_code == 1, result.output
    assert said in result.output and str(config) in result.output, result.output
