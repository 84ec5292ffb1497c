"""Headless Chromium from Debian's packages, driven by Selenium through Debian's chromium-driver.

Shared by the browser tests (``tests/browser.py``) and ``benchmarks/web_grid.py``, so it lives here
(benchmarks must not depend on ``tests/``); Selenium (the ``test`` extra) is imported only when a
browser starts. Never downloads a browser: the binary and the driver are the system's (``.ci/run``
installs them). WebDriver calls block, so async code runs them in a worker thread
(``asyncio.to_thread``) while the event loop keeps serving the pages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def have_browser() -> bool:
    """Whether the system's chromium and chromium-driver are installed."""
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


@contextmanager
def chromium(profile: Path, downloads: Path, size: tuple[int, int] = (1280, 900)) -> Iterator[Any]:
    """A fresh headless Chromium (its own profile folder), saving downloads into ``downloads``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        yield driver
    finally:
        driver.quit()


def wait(driver: Any, condition: Callable[[Any], Any], limit: float = 15.0, what: str = "condition") -> Any:
    """Poll ``condition(driver)`` until it is truthy; its value, or AssertionError naming ``what``."""
    deadline = time.monotonic() + limit
    while True:
        try:
            value = condition(driver)
        except Exception:  # the page is navigating or the element is being replaced
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)

