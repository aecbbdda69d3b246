"""The README's main command: `outbox demo`, with either relay, against the real stack."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from outboxkit.cli import main


@pytest.mark.parametrize("relay", ["polling", "cdc"])
def test_demo_makes_the_round_trip(
    relay: str, database_url: str, bootstrap_servers: str, connect_url: str
) -> None:
    result = CliRunner().invoke(
        main,
        ["--database-url", database_url, "--bootstrap-servers", bootstrap_servers, "demo", "--relay", relay],
        env={"OUTBOX_CONNECT_URL": connect_url},
    )
    assert result.exit_code == 0, result.output
    assert "order.placed" in result.output and "order.shipped" in result.output
    kafka_lines = [line for line in result.output.splitlines() if line.startswith("5. kafka")]
    assert len(kafka_lines) == 4 and not any("rolled-back" in line for line in kafka_lines)
    assert "6. shop: 4 events made the round trip" in result.output
    assert "'owner': 'cid', 'version': 5, 'installed_apps': ['blog']" in result.output
    assert "'owner': 'bob', 'version': 1, 'installed_apps': []" in result.output
    # The config example: read per request from the KV store, changes and the delete arrive.
    assert '(200, \'<html lang="de-CH" class="theme-neon"> features: cart, wishlist\')' in result.output
    assert "15. pages service: GET blog-" in result.output and "-> (404, 'no site blog-" in result.output
    assert "theme-broken" not in result.output
    assert "19. order status projection: every order settled; money and stock balance" in result.output
