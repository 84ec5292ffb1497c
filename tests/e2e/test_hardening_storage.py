"""What datathread leaves on disk: private modes under a normal umask, no half-registered datasets,
no orphans or stale hand-over files after a kill, and tables with awkward columns kept."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import stat
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from bot import events as ev
from bot.agents.backend import dataset_events
from bot.agents.kernel.agent import LocalKernelAgent
from bot.agents.kernel.handover import sweep_stale_handovers
from bot.composition import build_engine
from bot.config import Settings
from bot.conversation import Conversation, Turn
from bot.datasets.local import LocalDatasetStore
from bot.datasets.model import SortSpec
from bot.datasets.registrar import ThreadDatasets
from bot.logs import setup_logging
from bot.messages import IncomingMessage, ThreadKey
from bot.workspace import Workspace
from tests.surfaces import RecordingSurface

ROOT = Path(__file__).resolve().parent.parent
THREAD = ThreadKey("console", "local", "me", "t1")


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
        await engine.submit(IncomingMessage(thread=THREAD, user="me", text=CODE, event_id="e1", mentioned=True),
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


# ---- a registration killed part-way --------------------------------------------------------------

REGISTER_FOREVER = """
import asyncio, sys
from datetime import timedelta
from pathlib import Path
import numpy as np, pandas as pd
from bot.datasets.local import LocalDatasetStore
from bot.messages import ThreadKey

async def main():
    store = LocalDatasetStore(Path(sys.argv[1]), timedelta(hours=6))
    rows = 4_000_000
    frame = pd.DataFrame({"a": np.arange(rows), "b": np.random.default_rng(1).random(rows),
                          "c": np.arange(rows).astype(str)})
    print("registering", flush=True)
    while True:  # killed during one of these
        await store.register_frame(frame, name="big", thread=ThreadKey("console", "l", "me", "t"), owner="me")

asyncio.run(main())
"""


def age(path: Path, hours: float) -> None:
    """Make ``path`` (and what is directly in it) look ``hours`` old, as after a restart much later."""
    stamp = time.time() - hours * 3600
    for p in [path, *(path.iterdir() if path.is_dir() else ())]:
        os.utime(p, (stamp, stamp))


@pytest.mark.e2e
async def test_a_registration_killed_midway_leaves_nothing_the_sweep_does_not_remove(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    store = LocalDatasetStore(root, timedelta(hours=6))
    kept = await store.register_frame(pd.DataFrame({"x": [1, 2]}), name="kept", thread=THREAD, owner="me")
    await store.aclose()

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", REGISTER_FOREVER, str(root), cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    assert b"registering" in await asyncio.wait_for(proc.stdout.readline(), 60)
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size > 1_000_000 for p in root.glob("*/*.part")):  # data being written
        assert time.monotonic() < deadline, "the registration never started writing"
        await asyncio.sleep(0.01)
    proc.kill()
    await proc.wait()
    # And the kernel's hand-over file that a kill between export and registration leaves behind.
    handover = tmp_path / "workspaces" / "conv1" / ".datathread" / "frames" / "0123abcd.arrow"
    handover.parent.mkdir(parents=True)
    handover.write_bytes(b"x" * 1_000_000)
    fresh = handover.with_name("fresh.arrow")
    fresh.write_bytes(b"still being registered")

    orphans_before = [p.name for p in root.iterdir() if p.is_dir() and p.name != kept.id]
    assert orphans_before, "the kill left a partial dataset folder"
    store = LocalDatasetStore(root, timedelta(hours=6))
    try:
        assert await store.sweep() == 0  # younger than an hour: may still be registering
        for p in root.iterdir():
            if p.is_dir():
                age(p, 2)
        age(handover, 2)
        await store.sweep()
        swept = sweep_stale_handovers(tmp_path / "workspaces")
        orphans_after = [p.name for p in root.iterdir() if p.is_dir() and p.name != kept.id]
        print(f"orphans before sweep: {len(orphans_before)} {orphans_before}; after: {len(orphans_after)}")
        assert orphans_after == []
        assert swept == 1 and not handover.exists() and fresh.exists()
        page = await store.page(kept.id, 1, 10)  # a registered dataset survives every sweep
        assert page.rows == (("1",), ("2",))
    finally:
        await store.aclose()


async def test_a_dataset_folder_appears_only_once_complete(tmp_path: Path) -> None:
    store = LocalDatasetStore(tmp_path / "datasets", timedelta(hours=6))
    try:
        meta = await store.register_frame(pd.DataFrame({"x": range(10)}), name="t", thread=THREAD, owner="me")
        assert sorted(p.name for p in (tmp_path / "datasets").iterdir() if p.is_dir()) == [meta.id]
    finally:
        await store.aclose()


# ---- tables with columns Arrow has no type for ---------------------------------------------------

class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")

    __repr__ = __str__


async def test_complex_big_int_and_undecodable_columns_are_converted_not_dropped(tmp_path: Path) -> None:
    store = LocalDatasetStore(tmp_path / "datasets", timedelta(hours=6))
    frame = pd.DataFrame({
        "id": [1, 2, 3],
        "z": [1 + 2j, 3 - 1j, 0j],
        "big": [2**63, 2**64 + 5, -(2**63) - 1],
        "mixed": [b"\xff\xfe", "text", 3],
    })
    try:
        meta = await store.register_frame(frame, name="awkward", thread=THREAD, owner="me")
        assert [c.name for c in meta.columns] == ["id", "z", "big", "mixed"] and meta.dropped == ()
        page = await store.page(meta.id, 1, 10)
        assert page.rows[0] == ("1", "(1+2j)", "9223372036854775808", "b'\\xff\\xfe'")
        assert page.rows[1][2] == "18446744073709551621" and page.rows[2][2] == "-9223372036854775809"
        by_big = await store.page(meta.id, 1, 10, SortSpec("big", descending=True))
        assert [r[0] for r in by_big.rows] == ["2", "1", "3"]
    finally:
        await store.aclose()


async def test_a_column_that_cannot_be_stored_is_left_out_and_named(tmp_path: Path) -> None:
    store = LocalDatasetStore(tmp_path / "datasets", timedelta(hours=6))
    frame = pd.DataFrame({"id": [1, 2], "bad": [Unprintable(), Unprintable()], "ok": ["a", "b"]})
    try:
        meta = await store.register_frame(frame, name="partial", thread=THREAD, owner="me")
        assert [c.name for c in meta.columns] == ["id", "ok"]
        assert meta.dropped == ("bad",)
        assert (await store.get(meta.id)).dropped == ("bad",)
        notices = [e for e in dataset_events(meta) if isinstance(e, ev.Notice)]
        assert len(notices) == 1 and '"bad"' in notices[0].text
    finally:
        await store.aclose()


@pytest.mark.e2e
async def test_the_local_kernel_hands_over_awkward_tables_as_datasets(tmp_path: Path) -> None:
    settings = dataclasses.replace(Settings.from_env({"DATATHREAD_HOME": str(tmp_path)}), run_timeout=60.0)
    store = LocalDatasetStore(settings.datasets)
    agent = LocalKernelAgent.from_settings(settings)
    now = datetime.now(UTC)
    conversation = Conversation("k1", THREAD, "s-k1", "me", settings.workspaces / "k1", now, now)
    code = """```python
import pandas as pd
from IPython.display import display
display(pd.DataFrame({"z": [1 + 2j, 3 - 1j]}))
display(pd.DataFrame({"big": [2**63, 2**64 + 5]}))
display(pd.DataFrame({"mixed": [b"\\xff\\xfe", "text", 3]}))
```"""
    turn = Turn(conversation, code, (), Workspace(conversation.workspace).ensure(),
                ThreadDatasets(store, conversation))
    try:
        events = [e async for e in agent.run(turn)]
    finally:
        await agent.aclose()
    try:
        datasets = [e.dataset for e in events if isinstance(e, ev.DatasetProduced)]
        assert [[c.name for c in d.columns] for d in datasets] == [["z"], ["big"], ["mixed"]], events
        shown = [(await store.page(d.id, 1, 5)).rows for d in datasets]
        assert shown == [(("(1+2j)",), ("(3-1j)",)), (("9223372036854775808",), ("18446744073709551621",)),
                         (("b'\\xff\\xfe'",), ("text",), ("3",))]
        assert not list((conversation.workspace / ".datathread" / "frames").glob("*"))  # hand-overs consumed
    finally:
        await store.aclose()
