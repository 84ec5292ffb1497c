"""The dataset store: registration from frames and files, paging, sorting, exports, expiry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from bot.datasets.formatting import format_float
from bot.datasets.local import LocalDatasetStore
from bot.datasets.model import DatasetError, DatasetExpired, DatasetNotFound, SortSpec
from bot.messages import ThreadKey

KEY = ThreadKey("test", "T", "C", "1.0")


def frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({
        "id": [f"R{i:05d}" for i in range(1, n + 1)],
        "value": np.arange(n) * 1.5,
        "score": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        "ts": pd.date_range("2026-01-01", periods=n, freq="min"),
        "flag": rng.random(n) < 0.5,
    })


async def test_register_frame_metadata(store: LocalDatasetStore) -> None:
    meta = await store.register_frame(frame(1000), name="df", thread=KEY, owner="U1")
    assert (meta.name, meta.rows, meta.owner, meta.thread) == ("df", 1000, "U1", KEY)
    assert [(c.name, c.type) for c in meta.columns] == [
        ("id", "str"), ("value", "float"), ("score", "float"), ("ts", "datetime"), ("flag", "bool")]
    first = (await store.page(meta.id, 1, 5)).rows
    assert first[0][:2] == ("R00001", "0") and first[1][1] == "1.5"
    assert first[0][3] == "2026-01-01 00:00:00"
    assert len(meta.id) >= 20 and meta.expires - meta.created == timedelta(hours=6)
    other = await store.register_frame(frame(10), name="df", thread=KEY, owner="U1")
    assert other.id != meta.id
    assert [m.id for m in await store.list(KEY)] == [meta.id, other.id]


async def test_walk_every_page_to_the_end(store: LocalDatasetStore) -> None:
    source = frame(20_005)  # crosses several 8,192-row batches, ends on a partial page
    meta = await store.register_frame(source, name="df", thread=KEY, owner="U1")
    seen: list[str] = []
    number, guard = 1, 0
    while True:
        guard += 1
        assert guard <= 2000, "paging never ended"
        page = await store.page(meta.id, number, 37)
        assert page.start == (number - 1) * 37
        seen += [row[0] for row in page.rows]
        if not page.has_next:
            break
        number += 1
    assert seen == list(source["id"])
    assert page.number == page.pages == -(-20_005 // 37) and len(page.rows) == 20_005 % 37


async def test_page_numbers_past_the_end_clamp(store: LocalDatasetStore) -> None:
    meta = await store.register_frame(frame(45), name="df", thread=KEY, owner="U1")
    last = await store.page(meta.id, 999, 20)
    assert last.number == 3 and [r[0] for r in last.rows] == [f"R{i:05d}" for i in range(41, 46)]
    first = await store.page(meta.id, 0, 20)
    assert first.number == 1 and first.rows[0][0] == "R00001"


async def test_sorted_pages_asc_desc_with_missing_values_last(store: LocalDatasetStore) -> None:
    source = frame(30_000)
    meta = await store.register_frame(source, name="df", thread=KEY, owner="U1")
    valid = source["score"].dropna()
    asc = await store.page(meta.id, 1, 50, SortSpec("score"))
    desc = await store.page(meta.id, 1, 50, SortSpec("score", descending=True))
    assert [float(r[2]) for r in asc.rows] == pytest.approx(sorted(valid)[:50], rel=1e-6)
    assert [float(r[2]) for r in desc.rows] == pytest.approx(sorted(valid, reverse=True)[:50], rel=1e-6)
    tail = await store.page(meta.id, 10_000, 50, SortSpec("score", descending=True))
    assert all(r[2] == "" for r in tail.rows)  # NaN shown empty, after every number in both directions
    by_id = await store.page(meta.id, 1, 3, SortSpec("id", descending=True))
    assert [r[0] for r in by_id.rows] == ["R30000", "R29999", "R29998"]


async def test_sort_order_survives_a_new_store(store: LocalDatasetStore, tmp_path: Path) -> None:
    meta = await store.register_frame(frame(100), name="df", thread=KEY, owner="U1")
    await store.page(meta.id, 1, 5, SortSpec("value", descending=True))
    assert list((tmp_path / "datasets" / meta.id).glob("sort-*.npy"))
    again = LocalDatasetStore(tmp_path / "datasets")
    page = await again.page(meta.id, 1, 2, SortSpec("value", descending=True))
    assert [r[1] for r in page.rows] == ["148.5", "147"]
    await again.aclose()


async def test_register_each_file_type(store: LocalDatasetStore, tmp_path: Path) -> None:
    df = pd.DataFrame({"city": ["Oslo", "Lima", "Pune"], "temp": [3.5, 18.0, 31.25]})
    paths = {
        "a.csv": lambda p: df.to_csv(p),  # with pandas' index column: dropped on read
        "b.tsv": lambda p: df.to_csv(p, sep="\t", index=False),
        "c.parquet": lambda p: df.to_parquet(p),
        "d.jsonl": lambda p: p.write_text("\n".join(json.dumps(r) for r in df.to_dict("records"))),
        "e.xlsx": lambda p: df.to_excel(p, index=False),
    }
    for name, write in paths.items():
        path = tmp_path / name
        write(path)
        meta = await store.register_file(path, name=path.stem, thread=KEY, owner="U1")
        assert meta is not None, name
        assert [c.name for c in meta.columns] == ["city", "temp"], name
        page = await store.page(meta.id, 1, 10)
        assert page.rows == (("Oslo", "3.5"), ("Lima", "18"), ("Pune", "31.25")), name
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    assert await store.register_file(notes, name="notes", thread=KEY, owner="U1") is None


async def test_a_broken_file_gets_a_clear_error(store: LocalDatasetStore, tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(DatasetError, match=r"bad\.parquet could not be read as a table"):
        await store.register_file(bad, name="bad", thread=KEY, owner="U1")


async def test_export_round_trips(store: LocalDatasetStore, tmp_path: Path) -> None:
    source = frame(20_000)
    meta = await store.register_frame(source, name="df", thread=KEY, owner="U1")
    csv = await store.export(meta.id, "csv", tmp_path / "out.csv")
    parquet = await store.export(meta.id, "parquet", tmp_path / "out.parquet")
    back = pd.read_csv(csv)
    assert list(back["id"]) == list(source["id"]) and np.allclose(back["value"], source["value"])
    table = pq.read_table(parquet)
    assert table.num_rows == 20_000 and table.column("id").to_pylist()[-1] == "R20000"


async def test_expiry_sweep_and_unknown_ids(store: LocalDatasetStore, tmp_path: Path) -> None:
    meta = await store.register_frame(frame(10), name="sales", thread=KEY, owner="U1")
    folder = tmp_path / "datasets" / meta.id
    assert folder.exists()
    assert await store.sweep(datetime.now(UTC)) == 0
    assert await store.sweep(datetime.now(UTC) + timedelta(hours=7)) == 1
    assert not folder.exists()
    with pytest.raises(DatasetExpired, match=r'"sales" expired.*run the code again'):
        await store.get(meta.id)
    with pytest.raises(DatasetNotFound):
        await store.get("no-such-dataset")
    assert await store.list(KEY) == []


@pytest.mark.parametrize(("value", "shown"), [
    (149998.5, "149998.5"), (0.1 + 0.2, "0.3"), (1.0, "1"), (-2.5e-7, "-2.5e-07"), (float("nan"), ""),
])
def test_floats_show_the_value_the_data_holds(value: float, shown: str) -> None:
    assert format_float(value) == shown


@pytest.mark.parametrize("values", [
    ["b", "a", "", None, "ab", "a\x00", "é", "Z", "a", None, "abcdefghijk", "abcdefghij", "abcdefghijl"],
    [f"C{i:07d}" for i in (5, 3, 9, 3, 1, 0)],  # equal lengths: the strided fast path
    [f"https://x.org/{'ab'[i % 2]}/{i % 7:04d}/item{'x' * (i % 3)}" for i in range(200)],  # long shared prefix
])
def test_string_order_is_arrows_order(values: list[str | None]) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    from bot.datasets.stringsort import string_order

    column = pa.chunked_array([pa.array(values[: len(values) // 2]), pa.array(values[len(values) // 2 :])])
    expected = pc.array_sort_indices(column, null_placement="at_end").to_numpy()
    assert np.array_equal(string_order(column), expected)
