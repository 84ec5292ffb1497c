"""Fixtures shared by several test modules."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from adapters.slack.fake_web_api import FakeSlack
from bot.datasets.local import LocalDatasetStore
from tests.fakes.bedrock_agent_runtime import FakeBedrockAgents

#: A module whose every test is end-to-end says so on one module-level line.
_ALL_E2E = re.compile(r"^pytestmark = \[?\s*pytest\.mark\.e2e\b", re.MULTILINE)


def _fast_lane(config: pytest.Config) -> bool:
    return bool(config.getoption("markexpr", "").replace(" ", "") == "note2e")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """The fast lane (``-m "not e2e"``) runs on two workers (pytest-xdist) unless ``-n`` says
    otherwise: its ~1,100 tests are short and share nothing, and on the 2-core machine it took
    12-13 s instead of 15-17 s. The whole suite stays in one process: its e2e tests time real servers
    and kernels, which two workers would slow down."""
    if (_fast_lane(config) and config.pluginmanager.has_plugin("xdist") and (os.cpu_count() or 1) > 1
            and getattr(config.option, "numprocesses", 0) is None and "PYTEST_XDIST_WORKER" not in os.environ):
        config.option.numprocesses = 2
        config.option.dist = "load"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """In the fast lane (``-m "not e2e"``), a module marked e2e as a whole is not even imported:
    all its tests would be deselected, and importing it (SDKs, servers, fakes) is most of the
    lane's collection time."""
    if collection_path.suffix != ".py" or not _fast_lane(config):
        return None
    try:
        return bool(_ALL_E2E.search(collection_path.read_text())) or None
    except OSError:
        return None


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


@pytest.fixture
async def bedrock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[FakeBedrockAgents]:
    """The local fake of Bedrock Agents' runtime, with boto3's environment pointed at it (no real
    credentials or profile can leak in)."""
    service = FakeBedrockAgents()
    url = await service.start()
    for name, value in {
        "AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME": url, "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-creds"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield service
    await service.close()
