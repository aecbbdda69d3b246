"""The operator console in a real browser (headless Chromium): it shows a stuck relay, a
quarantined event and a lagging projector that the test creates, live, and clears when they are
resolved (one of them through the page's own discard action). Screenshots: test-artifacts/console/."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from sqlalchemy import Engine

from outbox import BytesSerializer, Event, Outbox, TopicRouter, publish_many
from outboxkit.examples.sites.events import SitesHistory, emit
from tests.browser import chromium, screenshot, wait_until
from tests.consumers.workload import Feed
from tests.isolated import free_port
from tests.projectors.conftest import projector_process
from tests.relay.conftest import RelayProcess, outbox_count, start_relay, wait_for

REPO = Path(__file__).resolve().parents[3]
REFERENCE = "outboxkit.examples.sites.projection:from_environment"
PROCESSOR = "tests.processors.target:from_environment"
TOKEN = "console-test-token-0123456789"


def quarantined(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT ce_id::text FROM outbox_quarantine").fetchall()]


# The page re-renders on every snapshot, so it is read and clicked with one script call each (an
# element found in one call may be replaced before the next).
def state(driver: WebDriver, element_id: str) -> str | None:
    return driver.execute_script(  # type: ignore[no-any-return]
        "const e = document.getElementById(arguments[0]); return e ? e.dataset.state : null", element_id
    )


def rows(driver: WebDriver) -> list[str]:
    return driver.execute_script(  # type: ignore[no-any-return]
        "return [...document.querySelectorAll('#quarantine tr[data-ce-id]')].map(r => r.dataset.ceId)"
    )


def text(driver: WebDriver) -> str:
    return driver.execute_script("return document.querySelector('main').innerText")  # type: ignore[no-any-return]


class Console:
    """`outbox console` as a child process."""

    def __init__(self, env: dict[str, str], port: int, log: Path, *args: str) -> None:
        command = [sys.executable, "-m", "outboxkit", "console", "--port", str(port), *args]
        with open(log, "ab") as stderr:
            self.proc = subprocess.Popen(command, env=env, cwd=REPO, stderr=stderr, stdout=subprocess.DEVNULL)
        self.url, self.log = f"http://127.0.0.1:{port}/", log

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


def test_the_page_shows_trouble_live_and_clears_when_it_is_resolved(
    database: tuple[str, Engine],
    bootstrap_servers: str,
    new_topic: Callable[..., str],
    unique: Callable[[str], str],
    tmp_path: Path,
) -> None:
    url, engine = database
    # A poison event: the topic takes 2 KB records, the event is 5 KB (publish() allows 1 MB).
    small = new_topic("console-small", config={"max.message.bytes": "2048"})
    outbox = Outbox(router=TopicRouter(small), serializer=BytesSerializer("text/plain"))

    def write(*events: tuple[str, bytes]) -> None:
        with engine.begin() as conn:
            publish_many(
                conn,
                [Event(type="t", aggregate_type="t", aggregate_id=a, payload=p) for a, p in events],
                outbox=outbox,
            )

    write(("bad", b"x" * 5000), ("bad", b"held"), ("good", b"1"))
    relay = start_relay(tmp_path, url, bootstrap_servers, "idempotent")
    wait_for(
        lambda: len(quarantined(url)) == 1 and outbox_count(url) == 1, 30, "the poison event quarantined"
    )
    assert relay.terminate() == 0
    # Stuck: events wait and no relay runs.
    write(*[("good", str(i).encode()) for i in range(2, 7)])
    # Lagging: a projector's topic holds 30 events it never applied.
    sites, name = new_topic("console-sites"), unique("console")
    emit(bootstrap_servers, sites, SitesHistory(seed=3).generate(30, sites=4))
    # A processor behind its input: 20 events it never handled.
    processor_input, processor = new_topic("console-input"), unique("console-processor")
    Feed(bootstrap_servers, processor_input).write(20)
    kv_topic = new_topic("console-kv", config={"cleanup.policy": "compact"})  # a sound KV store topic

    env = {
        "OUTBOX_DATABASE_URL": url,
        "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        "OUTBOX_CONSOLE_TOKEN": TOKEN,
        "SITES_TOPIC": sites,
        "SITES_PROJECTOR": name,
        "PROCESSOR_NAME": processor,
        "PROCESSOR_TOPIC": processor_input,
        "PROCESSOR_OUTPUT": unique("console-output"),
        "PROCESSOR_DLQ": unique("console-dlq"),
        "PYTHONPATH": str(REPO),
        "PATH": "/usr/bin:/bin",
    }
    console = Console(
        env,
        free_port(),
        tmp_path / "console.log",
        "--projector",
        REFERENCE,
        "--processor",
        PROCESSOR,
        "--kv-topic",
        kv_topic,
        "--stuck-after",
        "1",
        "--lag-threshold",
        "10",
        "--interval",
        "0.5",
        "--allow-actions",
    )
    relay = RelayProcess({}, tmp_path / "unused.log")
    projector = None
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        with chromium(height=1700) as driver:
            wait_for(lambda: _answers(console.url), 30, "the console to serve")
            driver.get(console.url)
            driver.execute_script("window.loadedOnce = true")
            wait_until(driver, lambda d: state(d, "relay") == "bad", 30, "the relay shown stuck")
            wait_until(driver, lambda d: len(rows(d)) == 1, 30, "the quarantined event listed")
            wait_until(
                driver, lambda d: state(d, f"projector-{name}") == "bad", 30, "the projector shown lagging"
            )
            wait_until(
                driver,
                lambda d: state(d, f"processor-{processor}") == "bad",
                30,
                "the processor shown lagging",
            )
            assert state(driver, f"kv-{kv_topic}") == "ok"
            page = text(driver)
            assert "stuck: 6 events wait" in page, page
            assert "exceeds the 2048-byte limit" in page and "30 behind" in page and "20 behind" in page, page
            assert driver.find_element(By.ID, "connection").get_attribute("data-state") == "live"
            screenshot(driver, "console", "1-trouble")

            # Resolve each: a relay runs (the held event still waits behind the quarantined one), the
            # quarantined event is discarded from the page (token asked once), the projector and the
            # processor catch up.
            relay = start_relay(tmp_path, url, bootstrap_servers, "idempotent")
            [ce_id] = rows(driver)
            driver.execute_script(
                "document.querySelector(`tr[data-ce-id='${arguments[0]}'] [data-action=discard]`).click()",
                ce_id,
            )
            wait_until(driver, _alert, 10, "the token prompt")
            alert = driver.switch_to.alert
            alert.send_keys(TOKEN)
            alert.accept()
            wait_until(driver, lambda d: rows(d) == [], 30, "the discarded event gone from the page")
            projector = projector_process(
                REFERENCE, url, bootstrap_servers, env, log=tmp_path / "projector.log"
            )
            daemons.append(daemon(["processor", "run", PROCESSOR], env, tmp_path / "processor.log"))
            wait_until(driver, lambda d: state(d, "relay") == "ok", 60, "the relay shown ok")
            wait_until(
                driver, lambda d: state(d, f"projector-{name}") == "ok", 60, "the projector shown caught up"
            )
            wait_until(
                driver, lambda d: state(d, "quarantine-card") == "ok", 30, "the quarantine shown empty"
            )
            wait_until(
                driver, lambda d: state(d, f"processor-{processor}") == "ok", 60, "the processor caught up"
            )
            screenshot(driver, "console", "2-resolved")

            assert driver.execute_script("return window.loadedOnce") is True, "the page was reloaded"
            # Everything came over the one event stream: no request but the page's own files and the
            # action (an open EventSource has no resource-timing entry until it ends).
            fetched = driver.execute_script(
                "return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname)"
            )
            assert sorted(fetched) == ["/api/quarantine/discard", "/static/console.css", "/static/console.js"]
            assert driver.find_element(By.ID, "connection").get_attribute("data-state") == "live"
        assert outbox_count(url) == 0 and quarantined(url) == []
    finally:
        for process in [*daemons, *([projector] if projector else [])]:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        if relay.alive():
            relay.terminate()
        code = console.stop()
    assert code == 0
    log = console.log.read_text()
    assert '"message":"console action","action":"discard"' in log and ce_id in log, log


def daemon(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "outboxkit", *args],
            env=env,
            cwd=REPO,
            stderr=stderr,
            stdout=subprocess.DEVNULL,
        )


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url + "api/state", timeout=5) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _alert(driver: WebDriver) -> bool:
    try:
        driver.switch_to.alert  # noqa: B018 - raises until the prompt is open
    except Exception:
        return False
    return True
