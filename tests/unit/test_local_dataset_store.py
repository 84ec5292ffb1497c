"""What only the local-disk ``DatasetStore`` promises: one folder per dataset, sort orders kept on disk.

The contract every store keeps is in ``tests/contract/test_dataset_store.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from bot.datasets.local import LocalDatasetStore
from bot.datasets.model import DatasetError, SortSpec
from bot.messages import ThreadKey

KEY = ThreadKey("test", "T", "C", "1.0")


def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"R{i:05d}" for i in range(1, n + 1)], "value": [i * 1.5 for i in range(n)]})


async def test_a_sort_order_is_kept_next_to_the_data_for_a_new_store(store: LocalDatasetStore, tmp_path: Path) -> None:
    meta = await store.register_frame(frame(100), name="df", thread=KEY, owner="U1")
    await store.page(meta.id, 1, 5, SortSpec("value", descending=True))
    await store.sort_order(meta.id, "value", descending=True)  # the first page may come before the full order
    assert list((tmp_path / "datasets" / meta.id).glob("sort-*.npy"))
    again = LocalDatasetStore(tmp_path / "datasets")
    page = await again.page(meta.id, 1, 2, SortSpec("value", descending=True))
    assert [r[1] for r in page.rows] == ["148.5", "147"]
    await again.aclose()


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
