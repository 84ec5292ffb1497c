"""What only the local-disk ``DatasetStore`` promises: one folder per dataset, sort orders kept on disk.

The contract every store keeps is in ``tests/contract/test_dataset_store.py``.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bot.datasets import local
from bot.datasets.local import LocalDatasetStore
from bot.datasets.model import DatasetError, SortSpec
from bot.datasets.tablefile import SortOrder
from bot.messages import ThreadKey

KEY = ThreadKey("test", "T", "C", "1.0")


def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"R{i:05d}" for i in range(1, n + 1)], "value": [i * 1.5 for i in range(n)]})


async def test_a_sort_order_is_kept_next_to_the_data_for_a_new_store(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalDatasetStore(tmp_path / "datasets")
    meta = await store.register_frame(frame(100), name="df", thread=KEY, owner="U1")
    await store.page(meta.id, 1, 5, SortSpec("value", descending=True))
    await store.sort_order(meta.id, "value", descending=True)  # the first page may come before the full order
    await store.aclose()  # as at shutdown: orders still being written are finished first
    assert list((tmp_path / "datasets" / meta.id).glob("sort-*.npy"))
    monkeypatch.setattr(local, "compute_sort", refuse)  # the new store must read the order, not sort again
    again = LocalDatasetStore(tmp_path / "datasets")
    page = await again.page(meta.id, 7, 2, SortSpec("value", descending=True))
    assert [r[1] for r in page.rows] == ["130.5", "129"]
    await again.aclose()


def refuse(*_: object) -> None:
    raise AssertionError("sorted again")


@pytest.fixture
def held_saves(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Sort orders are written only once the returned event is set, and slowly (a busy disk)."""
    release = threading.Event()
    save = SortOrder.save

    def slow_save(self: SortOrder, *args: Any) -> list[Path]:
        assert release.wait(30), "the test never released the save"
        time.sleep(0.2)  # long enough for a removal that did not wait to come first
        return save(self, *args)

    monkeypatch.setattr(SortOrder, "save", slow_save)
    yield release
    release.set()


async def test_a_new_order_serves_every_page_before_it_is_written(tmp_path: Path, held_saves: threading.Event) -> None:
    store = LocalDatasetStore(tmp_path / "datasets")
    meta = await store.register_frame(frame(100), name="df", thread=KEY, owner="U1")
    await store.sort_order(meta.id, "value")
    page = await store.page(meta.id, 10, 5, SortSpec("value"))  # past the first pages: needs the full order
    assert [r[1] for r in page.rows] == ["67.5", "69", "70.5", "72", "73.5"]
    assert not list((tmp_path / "datasets" / meta.id).glob("sort-*.npy"))  # the save is still held
    held_saves.set()
    await store.aclose()
    assert list((tmp_path / "datasets" / meta.id).glob("sort-*.npy"))


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), RuntimeError("a bug")])
async def test_an_order_that_cannot_be_written_goes_on_serving_and_the_log_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, failure: Exception) -> None:
    def fail(*_: object) -> None:
        raise failure

    monkeypatch.setattr(SortOrder, "save", fail)
    store = LocalDatasetStore(tmp_path / "datasets")
    meta = await store.register_frame(frame(100), name="df", thread=KEY, owner="U1")
    await store.sort_order(meta.id, "value")
    await store.aclose()  # waits for the failed write
    assert "sort order of dataset" in caplog.text and str(failure) in caplog.text
    assert not list((tmp_path / "datasets" / meta.id).glob("sort-*.npy"))
    again = LocalDatasetStore(tmp_path / "datasets")
    page = await again.page(meta.id, 20, 5, SortSpec("value", descending=True))
    assert [r[1] for r in page.rows] == ["6", "4.5", "3", "1.5", "0"]  # sorted again after the restart
    await again.aclose()


async def test_a_dataset_expiring_while_its_order_is_written_is_removed_after_the_write(
        store: LocalDatasetStore, tmp_path: Path, held_saves: threading.Event, monkeypatch: pytest.MonkeyPatch) -> None:
    meta = await store.register_frame(frame(100), name="df", thread=KEY, owner="U1")
    await store.sort_order(meta.id, "value")
    folder = tmp_path / "datasets" / meta.id
    expired = store.catalog.expired

    async def expired_now(now: datetime) -> Any:
        held_saves.set()  # the sweep has begun: the save goes on, slowly, while the sweep runs
        return await expired(now)

    removed_after: list[list[str]] = []
    rmtree = shutil.rmtree

    def remove(path: Path, *args: Any) -> None:
        removed_after.append(sorted(p.name for p in Path(path).glob("sort-*")))
        rmtree(path, *args)

    monkeypatch.setattr(store.catalog, "expired", expired_now)
    monkeypatch.setattr(local.shutil, "rmtree", remove)
    assert await store.sweep(datetime.now(UTC) + timedelta(hours=7)) == 1
    assert removed_after == [["sort-1.json", "sort-1.npy"]]  # the write finished before the folder went
    assert not folder.exists()


async def test_the_sweep_deletes_the_dataset_folder(store: LocalDatasetStore, tmp_path: Path) -> None:
    meta = await store.register_frame(frame(10), name="sales", thread=KEY, owner="U1")
    folder = tmp_path / "datasets" / meta.id
    assert folder.exists()
    assert await store.sweep(datetime.now(UTC)) == 0
    assert folder.exists()
    assert await store.sweep(datetime.now(UTC) + timedelta(hours=7)) == 1
    assert not folder.exists()


async def test_a_file_that_cannot_be_read_leaves_no_folder_behind(store: LocalDatasetStore, tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(DatasetError):
        await store.register_file(bad, name="bad", thread=KEY, owner="U1")
    assert [p.name for p in (tmp_path / "datasets").iterdir() if p.is_dir()] == []
