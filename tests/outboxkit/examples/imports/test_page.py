"""The imports page in headless Chromium on the real stack: an upload's bar reaches 100 % with no
polling; a gateway stopped mid-import and started again: the page shows every status change once,
in order; another user's browser never sees the job. Screenshots in test-artifacts/imports/."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser import chromium, screenshot, wait_until
from tests.outboxkit.examples.imports.conftest import Imports, write_csv

ROWS, CHUNK = 600, 50


def jobs(driver: WebDriver) -> list[dict[str, Any]]:
    return driver.execute_script(  # type: ignore[no-any-return]
        "return [...document.querySelectorAll('.job')].map(j => ({id: j.id.slice(4),"
        " status: j.dataset.status, percent: Number(j.dataset.percent)}))"
    )


def connection(driver: WebDriver) -> str:
    return driver.execute_script("return document.getElementById('connection').dataset.state")  # type: ignore[no-any-return]


def requests_made(driver: WebDriver) -> list[str]:
    """Every HTTP request the page made (the WebSocket is not among them)."""
    return driver.execute_script(  # type: ignore[no-any-return]
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname)"
    )


def upload(driver: WebDriver, path: Path) -> None:
    driver.find_element(By.ID, "file").send_keys(str(path))
    driver.find_element(By.ID, "send").click()


def test_an_upload_is_pushed_live_through_a_gateway_restart_and_only_to_its_user(
    imports_app: Callable[..., Imports], tmp_path: Path
) -> None:
    app = imports_app(workers=2, chunk=CHUNK, chunk_delay=0.4)
    csv = write_csv(tmp_path / "contacts.csv", ROWS)
    with chromium() as alice, chromium() as bob:
        alice.get(app.web_url + "?user=alice")
        bob.get(app.web_url + "?user=bob")
        for driver in (alice, bob):
            wait_until(driver, lambda d: connection(d) == "live", 20, "the page to go live")
        screenshot(alice, "imports", "1-empty")

        upload(alice, csv)
        wait_until(alice, lambda d: any(0 < j["percent"] < 100 for j in jobs(d)), 30, "the import to start")
        screenshot(alice, "imports", "2-importing")
        assert app.gateway.stop() == 0  # the gateway goes away mid-import
        wait_until(alice, lambda d: connection(d) == "offline", 20, "the page to notice")
        stalled = jobs(alice)[0]["percent"]
        time.sleep(1.5)  # the import goes on meanwhile
        screenshot(alice, "imports", "3-gateway-down")
        app.gateway.start()
        wait_until(
            alice, lambda d: jobs(d) and jobs(d)[0]["status"] == "completed", 60, "the bar to reach 100 %"
        )
        time.sleep(0.5)  # the bar's width animates for 0.2 s
        screenshot(alice, "imports", "4-completed")
        assert jobs(alice)[0]["percent"] == 100 and stalled < 100

        # every status change once, in order: requested, a progress per chunk, completed
        log = alice.execute_script("return window.statusLog")
        assert [entry["imported"] for entry in log] == list(range(0, ROWS + 1, CHUNK))
        assert [entry["type"] for entry in log] == (
            ["import.requested"] + ["import.progress"] * (ROWS // CHUNK - 1) + ["import.completed"]
        )
        offsets = [entry["offset"] for entry in log]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
        # no polling: one load of the jobs, one session, one upload; all status came by WebSocket
        made = requests_made(alice)
        assert made.count("/api/jobs") == 1 and made.count("/api/imports") == 1, made
        assert [row.status for row in app.job_rows()] == ["completed"]

        assert jobs(bob) == [] and bob.execute_script("return window.statusLog") == []
        bob.refresh()  # a fresh load of bob's page as well as the live one before it
        wait_until(bob, lambda d: connection(d) == "live", 20, "bob's page to go live")
        assert jobs(bob) == [] and bob.execute_script("return window.statusLog") == []
        assert "contacts.csv" not in bob.find_element(By.TAG_NAME, "main").text
        screenshot(bob, "imports", "5-other-user")
