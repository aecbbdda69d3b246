"""The README's main command: `outbox demo` against the real stack."""

from __future__ import annotations

from click.testing import CliRunner

from outboxkit.cli import main


def test_demo_makes_the_round_trip(database_url: str, bootstrap_servers: str) -> None:
    result = CliRunner().invoke(
        main, ["--database-url", database_url, "--bootstrap-servers", bootstrap_servers, "demo"]
    )
    assert result.exit_code == 0, result.output
    assert "order.placed" in result.output and "order.shipped" in result.output
    assert "rolled-back" not in "".join(line for line in result.output.splitlines() if "5. kafka" in line)
    assert "6. shop: 4 events made the round trip" in result.output
    assert "'owner': 'cid', 'version': 5, 'installed_apps': ['blog']" in result.output
    assert "'owner': 'bob', 'version': 1, 'installed_apps': []" in result.output
