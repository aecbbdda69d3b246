"""The console's HTTP surface in-process (Starlette's TestClient) on a real database: state, and
the actions' refusals (read-only, token, body)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from outbox import migrations
from outbox.errors import ConfigurationError
from outboxkit.cli import main
from outboxkit.console.actions import QuarantineActions
from outboxkit.console.app import create_app
from outboxkit.console.sources import ConsoleSources, Thresholds, describe
from outboxkit.console.state import Poller
from outboxkit.kafka.settings import KafkaSettings
from relay.status import RelayStatusSource
from tests.relay.conftest import wait_for
from tests.relay.events import engine_for

TOKEN = "a-console-token-of-some-length"


@pytest.fixture
def console(new_database: Callable[[], str], bootstrap_servers: str) -> Iterator[Callable[..., TestClient]]:
    url = new_database()
    migrations.upgrade(url)
    engine = engine_for(url)
    pollers: list[Poller] = []

    def make(token: str | None) -> TestClient:
        sources = ConsoleSources(
            url,
            KafkaSettings(bootstrap_servers=bootstrap_servers),
            engine,
            relay=RelayStatusSource(url, None, 1),
            cdc=None,
            projectors=[],
            thresholds=Thresholds(),
        )
        poller = Poller(sources.read, 0.2).start()
        pollers.append(poller)
        return TestClient(create_app(poller, QuarantineActions(url, token), describe(sources)))

    yield make
    for poller in pollers:
        poller.stop()
    engine.dispose()


def test_state_says_what_is_watched_and_carries_the_latest_snapshot(
    console: Callable[..., TestClient],
) -> None:
    client = console(None)
    wait_for(lambda: client.get("/api/state").json()["snapshot"] is not None, 10, "a first snapshot")
    state = client.get("/api/state").json()
    assert state["actions"] is False and state["watching"]["projectors"] == []
    assert "***" in state["watching"]["database"]  # the password is masked
    assert state["snapshot"]["relay"]["backlog"] == 0 and state["history"]
    page = client.get("/")
    assert page.status_code == 200 and "outboxkit console" in page.text
    assert client.get("/static/console.js").status_code == 200


def test_a_read_only_console_refuses_every_action(console: Callable[..., TestClient]) -> None:
    client = console(None)
    answer = client.post("/api/quarantine/discard", json={"ce_ids": [str(uuid.uuid4())]})
    assert answer.status_code == 403 and "--allow-actions" in answer.json()["error"]


def test_actions_need_the_token_and_a_list_of_event_ids(console: Callable[..., TestClient]) -> None:
    client = console(TOKEN)
    ce_ids = {"ce_ids": [str(uuid.uuid4())]}
    assert client.post("/api/quarantine/discard", json=ce_ids).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token-at-all-no"}
    assert client.post("/api/quarantine/discard", json=ce_ids, headers=wrong).status_code == 401
    right = {"Authorization": f"Bearer {TOKEN}"}
    bad = client.post("/api/quarantine/discard", json={"ce_ids": ["nope"]}, headers=right)
    assert bad.status_code == 400 and "UUIDs" in bad.json()["error"]
    assert client.post("/api/quarantine/destroy", json=ce_ids, headers=right).status_code == 404
    not_json = client.post("/api/quarantine/discard", content=b"{", headers=right)
    assert not_json.status_code == 400
    done = client.post("/api/quarantine/requeue", json=ce_ids, headers=right)
    assert done.status_code == 200 and done.json() == {"done": []}  # nothing of that id quarantined


def test_a_short_token_or_a_missing_one_is_refused_at_start(database_url: str) -> None:
    with pytest.raises(ConfigurationError, match="at least 16"):
        QuarantineActions(database_url, "short")
    result = CliRunner().invoke(main, ["console", "--allow-actions"], env={"OUTBOX_CONSOLE_TOKEN": ""})
    assert result.exit_code == 2 and "OUTBOX_CONSOLE_TOKEN" in result.output
