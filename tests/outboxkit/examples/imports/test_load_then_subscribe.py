"""Load, then subscribe, while a job imports: the state read from the projection plus the events
from its positions show every status change after the loaded one exactly once (a raw client
applying the page's rule: drop what is not newer than the job's version)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.outboxkit.examples.imports.conftest import Imports, write_csv
from tests.outboxkit.examples.imports.test_workers import upload
from tests.outboxkit.gateway.conftest import receive, subscribe, token

ROWS, CHUNK = 400, 20


def test_a_load_in_the_middle_of_an_import_then_a_subscription_misses_nothing(
    imports_app: Callable[..., Imports], tmp_path: Path
) -> None:
    app = imports_app(workers=2, chunk=CHUNK, chunk_delay=0.1)
    job = upload(app, "carol", write_csv(tmp_path / "c.csv", ROWS))["job_id"]
    loaded: dict[str, Any] = {}
    deadline = time.monotonic() + 30
    while not loaded or loaded["imported"] < 3 * CHUNK:  # the import is well under way
        assert time.monotonic() < deadline, "the projection shows no progress"
        state = httpx.get(app.web_url + "api/jobs?user=carol").json()
        loaded = next((j for j in state["jobs"] if j["job_id"] == job), {})
        time.sleep(0.05)
    shown = loaded["imported"]
    version = loaded["version"]["offset"]
    client = app.gateway.client(token("carol"))
    assert receive(client)["type"] == "connected"
    subscribe(client, "user:carol", state["positions"])
    applied, dropped = [], 0
    while not applied or applied[-1] < ROWS:
        message = receive(client, 30)
        if message["type"] != "event":
            continue
        if message["version"]["offset"] <= version:
            dropped += (
                1  # already in the loaded state (the positions may lag the rows' snapshot: none do here)
            )
            continue
        version = message["version"]["offset"]
        applied.append(message["event"]["data"]["imported"])
    assert applied == list(range(shown + CHUNK, ROWS + 1, CHUNK)), f"loaded {shown}, then {applied}"
    # the positions come from the rows' own snapshot (REPEATABLE READ): nothing already shown is replayed
    assert dropped == 0
