"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from adapters.slack.fake_web_api import FakeSlack
from bot.datasets.local import LocalDatasetStore


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    """The local fake of Slack's Web API, on a free loopback port."""
    f = await FakeSlack().start()
    yield f
    await f.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalDatasetStore]:
    """A real dataset store in this test's temporary folder (6-hour retention, as by default)."""
    s = LocalDatasetStore(tmp_path / "datasets", timedelta(hours=6))
    yield s
    await s.aclose()
