"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.datasets.local import LocalDatasetStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalDatasetStore]:
    """A real dataset store in this test's temporary folder (6-hour retention, as by default)."""
    s = LocalDatasetStore(tmp_path / "datasets", timedelta(hours=6))
    yield s
    await s.aclose()
