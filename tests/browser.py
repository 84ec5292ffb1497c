"""The browser for tests: the shared launcher, a skip marker and screenshots saved as artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.web.browser import chromium, have_browser, wait

__all__ = ["ARTIFACTS", "chromium", "needs_browser", "screenshot", "wait"]

#: Screenshots a person looks at (gitignored).
ARTIFACTS = Path(__file__).parent / "artifacts"

needs_browser = pytest.mark.skipif(not have_browser(),
                                   reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")


def screenshot(driver: Any, name: str) -> Path:
    """Save what the browser shows as ``tests/artifacts/NAME``."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path
