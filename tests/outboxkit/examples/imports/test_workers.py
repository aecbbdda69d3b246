"""Import workers killed with SIGKILL during jobs: every contact imported exactly once, every job
completed; a file with a bad row ends failed, with nothing of the bad chunk imported."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.outboxkit.examples.imports.conftest import Imports, wait_for, write_csv

JOBS, ROWS = 4, 300
KILLS = int(os.environ.get("OUTBOX_IMPORTS_KILLS", "8"))
"""Workers killed per run (a longer run: OUTBOX_IMPORTS_KILLS=100, with more jobs below if needed)."""


def upload(app: Imports, user: str, path: Path) -> dict[str, object]:
    answer = httpx.post(
        app.web_url + f"api/imports?user={user}",
        content=path.read_bytes(),
        headers={"X-File-Name": path.name},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_killed_workers_import_every_contact_exactly_once(
    imports_app: Callable[..., Imports], tmp_path: Path
) -> None:
    app = imports_app(workers=3, chunk=20, chunk_delay=0.05)
    chance = random.Random(16)
    ids = [
        upload(app, f"user{n % 2}", write_csv(tmp_path / f"c{n}.csv", ROWS))["job_id"] for n in range(JOBS)
    ]
    bad = upload(app, "user0", write_csv(tmp_path / "bad.csv", 50, bad_row=33))["job_id"]
    kills = 0
    deadline = time.monotonic() + 120 + 2 * KILLS
    while time.monotonic() < deadline:
        rows = {r.job_id: r for r in app.job_rows()}
        if all(rows.get(j) is not None and rows[j].status in ("completed", "failed") for j in [*ids, bad]):
            break
        if kills < KILLS:
            victim = chance.choice(app.workers)
            if victim.alive():
                victim.kill9()
                kills += 1
                victim.start()
        time.sleep(chance.uniform(0.5, 1.5))
    rows = {r.job_id: r for r in app.job_rows()}
    assert kills >= min(4, KILLS), "the jobs ended before the workers could be killed: make them longer"
    assert [rows[j].status for j in ids] == ["completed"] * JOBS
    assert all(rows[j].imported == ROWS == rows[j].total for j in ids)
    counts = app.contact_counts()
    for job in ids:
        imported = {row: n for (j, row), n in counts.items() if j == job}
        assert sorted(imported) == list(range(1, ROWS + 1)), f"contacts of {job} lost"
        assert set(imported.values()) == {1}, f"contacts of {job} imported twice"
    assert rows[bad].status == "failed" and "row 33" in (rows[bad].error or "")
    assert rows[bad].imported == 20  # the first chunk went in; the chunk with the bad row did not
    assert sorted(r for (j, r) in counts if j == bad) == list(range(1, 21))
    wait_for(lambda: all(w.alive() for w in app.workers), 5, "the workers to run")
