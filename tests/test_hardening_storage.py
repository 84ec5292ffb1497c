"""What datathread leaves on disk: private modes under a normal umask, no half-registered datasets,
no orphans or stale hand-over files after a kill, and tables with awkward columns kept."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.composition import build_engine
from bot.config import Settings
from bot.logs import setup_logging
from bot.messages import IncomingMessage, ThreadKey
from tests.surfaces import RecordingSurface

CSV = b"city,temp\nOslo,3\nLima,19\n"


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


CODE = """```python
import pandas as pd
df = pd.DataFrame({"city": ["Oslo", "Lima"], "temp": [3, 19]})
df.to_csv("weather.csv", index=False)
df
```"""


def modes(root: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[path.relative_to(root).as_posix()] = stat.S_IMODE(path.lstat().st_mode)
    return found


@pytest.mark.e2e
async def test_home_folders_are_0700_and_files_0600_under_a_umask_of_022(tmp_path: Path, umask_022: None) -> None:
    home = tmp_path / "home"
    env = {"DATATHREAD_HOME": str(home)}
    settings = Settings.from_env(env)
    engine = build_engine(settings, env=env)  # the real local kernel runs the code
    setup_logging(logging.INFO, home / "datathread.log")
    try:
        surface = RecordingSurface()
        thread = ThreadKey("console", "local", "me", "t1")
        await engine.submit(IncomingMessage(thread=thread, user="me", text=CODE, event_id="e1", mentioned=True),
                            surface)
        assert surface.of("upload"), "the turn wrote and posted a file"
        assert list((home / "datasets").iterdir()), "the table became a dataset"
    finally:
        await engine.aclose()
        setup_logging(logging.INFO)
    found = modes(home)
    kinds = {".", "state.sqlite3", "datathread.log", "datasets", "workspaces"}
    assert kinds <= set(found)
    loose = {name: oct(mode) for name, mode in found.items() if mode & 0o077}
    assert loose == {}
    assert found["."] == 0o700 and found["state.sqlite3"] == 0o600 and found["workspaces"] == 0o700
