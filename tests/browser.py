"""Headless Chromium for the page tests, from Debian's packages (`stack/install-browser` installs
them; nothing is downloaded at test time). Screenshots go to `test-artifacts/` in the checkout."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"


def chromium_paths() -> tuple[str, str] | None:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[WebDriver]:
    paths = chromium_paths()
    assert paths, "chromium and chromedriver are not installed: run stack/install-browser"
    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(service=Service(paths[1]), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: WebDriver, folder: str, name: str) -> Path:
    """Save the page as test-artifacts/<folder>/<name>.png (kept after the run, for looking at)."""
    path = ARTIFACTS / folder / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(path)), f"no screenshot saved at {path}"
    return path


def wait_until(
    driver: WebDriver, condition: Callable[[WebDriver], object], timeout: float, what: str
) -> None:
    WebDriverWait(driver, timeout, poll_frequency=0.2).until(
        condition, message=f"timed out waiting for {what}"
    )
