"""Every ``DatasetStore`` (``bot/datasets/model.py``) keeps its contract: registration from frames and
files, paging to the end, sorting, exports, expiry and sweeping, unknown and foreign ids.

Parametrized over ``STORES``; a second implementation (S3 + DynamoDB) adds one entry there and
inherits every check. Checks about one implementation's files on disk are in ``tests/unit``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bot.datasets import local as local_store
from bot.datasets import s3 as s3_store_module
from bot.datasets.dynamo_catalog import DynamoCatalog
from bot.datasets.local import LocalDatasetStore
from bot.datasets.model import ChartSpec, DatasetError, DatasetExpired, DatasetNotFound, DatasetStore, SortSpec
from bot.datasets.s3 import S3DatasetStore
from bot.datasets.tablefile import BATCH_ROWS, SortOrder, compute_sort
from bot.messages import ThreadKey
from tests.fakes import moto_aws

KEY = ThreadKey("test", "T", "C", "1.0")
OTHER = ThreadKey("test", "T", "C", "2.0")
RETENTION = timedelta(hours=6)

#: name -> a store kept under a test's temporary folder (the same folder twice: the same store after a restart).
STORES: dict[str, Callable[[Path], DatasetStore]] = {
    "local": lambda tmp: LocalDatasetStore(tmp / "datasets", RETENTION),
    "s3": lambda tmp: s3_store(tmp),
}
#: Stores that start a server (moto): in the e2e lane.
E2E_STORES = {"s3"}


def s3_store(tmp: Path) -> DatasetStore:
    settings, clients = moto_aws.settings_for(str(tmp)), moto_aws.shared().clients()
    catalog = DynamoCatalog(clients.dynamodb, settings.table)
    # A fresh cache folder each time: a second store is another replica, it shares only S3 and DynamoDB.
    cache = tmp / f"s3-cache-{len(list(tmp.glob('s3-cache-*')))}"
    return S3DatasetStore(clients.s3, settings.bucket, settings.prefix, catalog, cache, RETENTION)


@pytest.fixture(params=[pytest.param(name, marks=[pytest.mark.e2e] if name in E2E_STORES else [])
                        for name in sorted(STORES)])
def make_store(request: pytest.FixtureRequest) -> Callable[[Path], DatasetStore]:
    return STORES[request.param]


@pytest.fixture
async def store(make_store: Callable[[Path], DatasetStore], tmp_path: Path) -> AsyncIterator[DatasetStore]:
    s = make_store(tmp_path)
    yield s
    await s.aclose()


def frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({
        "id": [f"R{i:05d}" for i in range(1, n + 1)],
        "value": np.arange(n) * 1.5,
        "score": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        "ts": pd.date_range("2026-01-01", periods=n, freq="min"),
        "flag": rng.random(n) < 0.5,
    })


async def test_register_frame_metadata(store: DatasetStore) -> None:
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


async def test_walk_every_page_to_the_end(store: DatasetStore) -> None:
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


async def test_page_numbers_past_the_end_clamp(store: DatasetStore) -> None:
    meta = await store.register_frame(frame(45), name="df", thread=KEY, owner="U1")
    last = await store.page(meta.id, 999, 20)
    assert last.number == 3 and [r[0] for r in last.rows] == [f"R{i:05d}" for i in range(41, 46)]
    first = await store.page(meta.id, 0, 20)
    assert first.number == 1 and first.rows[0][0] == "R00001"


async def test_sorted_pages_asc_desc_with_missing_values_last(store: DatasetStore) -> None:
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


async def test_sorting_is_stable_both_ways_like_pandas(store: DatasetStore) -> None:
    """Rule: equal values keep their row order in both directions, missing values last (as a stable
    ``sort_values(..., kind="stable", na_position="last")``), whatever the store."""
    source = pd.DataFrame({"row": range(12), "v": [2, 1, None, 2, 1, 3, None, 2, 3, 1, 2, 3]})
    meta = await store.register_frame(source, name="ties", thread=KEY, owner="U1")
    for descending in (False, True):
        page = await store.page(meta.id, 1, 12, SortSpec("v", descending=descending))
        expected = source.sort_values("v", ascending=not descending, kind="stable", na_position="last")["row"]
        assert [int(r[0]) for r in page.rows] == list(expected), f"descending={descending}"


async def test_datasets_and_sort_orders_survive_a_new_store(
        store: DatasetStore, make_store: Callable[[Path], DatasetStore], tmp_path: Path) -> None:
    meta = await store.register_frame(frame(100), name="df", thread=KEY, owner="U1")
    await store.page(meta.id, 1, 5, SortSpec("value", descending=True))
    again = make_store(tmp_path)
    try:
        assert await again.get(meta.id) == meta
        page = await again.page(meta.id, 1, 2, SortSpec("value", descending=True))
        assert [r[1] for r in page.rows] == ["148.5", "147"]
    finally:
        await again.aclose()


async def test_a_first_sorted_page_comes_while_the_full_order_is_computed(
        make_store: Callable[[Path], DatasetStore], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rule: the first sorted page of a large dataset does not wait for its full order: opened after
    registration (for S3, on another replica), the store answers it from the few batches that can
    hold it while the order is computed (held here until the page is in), with exactly a stable
    pandas sort's rows; a later page waits for the order and is right too."""
    rng = np.random.default_rng(4)
    n = 24 * BATCH_ROWS  # enough batches for a 20-row page from their extremes
    source = pd.DataFrame({"row": range(n), "v": np.where(rng.random(n) < 0.05, np.nan, rng.integers(0, 900, n))})
    registering = make_store(tmp_path)
    meta = await registering.register_frame(source, name="big", thread=KEY, owner="U1")
    await registering.aclose()  # lets the background work after registration (the extremes) finish
    computing, release = threading.Event(), threading.Event()

    def held(column: pa.ChunkedArray) -> SortOrder:
        computing.set()
        release.wait(60)
        return compute_sort(column)

    monkeypatch.setattr(local_store, "compute_sort", held)
    monkeypatch.setattr(s3_store_module, "compute_sort", held)
    store = make_store(tmp_path)
    try:
        expected = list(source.sort_values("v", kind="stable", na_position="last")["row"])
        page = await asyncio.wait_for(store.page(meta.id, 1, 20, SortSpec("v")), 30)
        assert [int(r[0]) for r in page.rows] == expected[:20]
        assert await asyncio.to_thread(computing.wait, 30)  # the full order is on its way meanwhile
        release.set()
        later = await store.page(meta.id, 2_000, 20, SortSpec("v"))
        assert [int(r[0]) for r in later.rows] == expected[39_980:40_000]
    finally:
        release.set()
        await store.aclose()


async def test_register_each_file_type(store: DatasetStore, tmp_path: Path) -> None:
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


async def test_a_broken_file_gets_a_clear_error(store: DatasetStore, tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(DatasetError, match=r"bad\.parquet could not be read as a table"):
        await store.register_file(bad, name="bad", thread=KEY, owner="U1")


async def test_export_round_trips(store: DatasetStore, tmp_path: Path) -> None:
    source = frame(20_000)
    meta = await store.register_frame(source, name="df", thread=KEY, owner="U1")
    csv = await store.export(meta.id, "csv", tmp_path / "out.csv")
    parquet = await store.export(meta.id, "parquet", tmp_path / "out.parquet")
    back = pd.read_csv(csv)
    assert list(back["id"]) == list(source["id"]) and np.allclose(back["value"], source["value"])
    table = pq.read_table(parquet)
    assert table.num_rows == 20_000 and table.column("id").to_pylist()[-1] == "R20000"


async def test_a_sorted_export_holds_every_row_in_the_sorted_order(store: DatasetStore, tmp_path: Path) -> None:
    source = frame(70_000)  # more rows than one gathered chunk of a sorted export (65,536)
    meta = await store.register_frame(source, name="df", thread=KEY, owner="U1")
    desc = pd.read_csv(await store.export(meta.id, "csv", tmp_path / "desc.csv", SortSpec("score", descending=True)))
    valid = source["score"].dropna().sort_values(ascending=False)
    assert len(desc) == 70_000 and np.allclose(desc["score"][: len(valid)], valid)
    assert desc["score"][len(valid):].isna().all()  # missing values last, as in sorted pages
    asc = pq.read_table(await store.export(meta.id, "parquet", tmp_path / "asc.parquet", SortSpec("id")))
    assert asc.column("id").to_pylist() == sorted(source["id"])


async def test_expiry_sweep_and_unknown_ids(store: DatasetStore, tmp_path: Path) -> None:
    meta = await store.register_frame(frame(10), name="sales", thread=KEY, owner="U1")
    assert await store.sweep(datetime.now(UTC)) == 0
    assert await store.sweep(datetime.now(UTC) + timedelta(hours=7)) == 1
    with pytest.raises(DatasetExpired, match=r'"sales" expired.*run the code again'):
        await store.get(meta.id)
    with pytest.raises(DatasetNotFound):
        await store.get("no-such-dataset")
    assert await store.list(KEY) == []



async def test_a_dataset_is_listed_only_in_its_own_thread(store: DatasetStore) -> None:
    mine = await store.register_frame(frame(5), name="mine", thread=KEY, owner="U1")
    theirs = await store.register_frame(frame(5), name="theirs", thread=OTHER, owner="U2")
    assert [m.id for m in await store.list(KEY)] == [mine.id]
    assert [m.id for m in await store.list(OTHER)] == [theirs.id]
    assert await store.list(ThreadKey("test", "T", "C", "3.0")) == []


@pytest.mark.parametrize("foreign", ["no-such-dataset", "", "../catalog.sqlite3", "../../etc/passwd", "x" * 500])
async def test_unknown_or_forged_ids_are_not_found_for_every_request(
        store: DatasetStore, tmp_path: Path, foreign: str) -> None:
    await store.register_frame(frame(5), name="df", thread=KEY, owner="U1")
    with pytest.raises(DatasetNotFound) as got:
        await store.get(foreign)
    assert "Traceback" not in str(got.value) and len(str(got.value)) < 200
    with pytest.raises(DatasetNotFound):
        await store.page(foreign, 1, 10)
    with pytest.raises(DatasetNotFound):
        await store.export(foreign, "csv", tmp_path / "out.csv")
    with pytest.raises(DatasetNotFound):
        await store.chart(foreign, ChartSpec("bar", "id", "value"), tmp_path / "out.png")
    with pytest.raises(DatasetNotFound):
        await store.chart_data(foreign, ChartSpec("bar", "id", "value"))
    assert not (tmp_path / "out.csv").exists()


async def test_an_expired_dataset_says_so_for_pages_and_exports_until_swept(
        make_store: Callable[[Path], DatasetStore], tmp_path: Path) -> None:
    store = make_store(tmp_path)
    try:
        meta = await store.register_frame(frame(5), name="sales", thread=KEY, owner="U1")
        assert await store.sweep(meta.expires + timedelta(seconds=1)) == 1
        assert await store.sweep(meta.expires + timedelta(seconds=2)) == 0  # once only
        with pytest.raises(DatasetExpired, match="sales"):
            await store.get(meta.id)
        with pytest.raises(DatasetExpired, match="sales"):
            await store.page(meta.id, 1, 10)
        with pytest.raises(DatasetExpired, match="sales"):
            await store.export(meta.id, "csv", tmp_path / "out.csv")
    finally:
        await store.aclose()


async def test_every_page_of_a_sorted_walk_is_in_order_and_nothing_repeats(store: DatasetStore) -> None:
    source = frame(1_000)
    meta = await store.register_frame(source, name="df", thread=KEY, owner="U1")
    seen: list[float] = []
    number = 1
    for _guard in range(1_000):
        page = await store.page(meta.id, number, 64, SortSpec("value", descending=True))
        seen += [float(r[1]) for r in page.rows]
        if not page.has_next:
            break
        number += 1
    assert seen == sorted(source["value"], reverse=True)


async def test_a_bar_of_at_most_20_groups_comes_as_data_in_the_order_the_png_draws(store: DatasetStore) -> None:
    sales = pd.DataFrame({"region": ["west", "east", "<!channel>", "east", None, "west", "west"],
                          "amount": [1.0, 2.5, 4.0, 2.5, 3.0, 1.0, 1.0],
                          "year": [2024, 2023, 2025, 2023, 2024, 2023, 2025]})
    meta = await store.register_frame(sales, name="sales", thread=KEY, owner="U1")
    data = await store.chart_data(meta.id, ChartSpec("bar", "region", "amount"))
    assert data is not None and data.kind == "bar"
    assert data.title == "sales: bar of amount by region"
    # text categories by their sum, largest first; the missing one named, data kept as written
    assert data.categories == ("east", "<!channel>", "west", "(empty)")
    assert [s.name for s in data.series] == ["sum of amount"]
    assert data.series[0].values == (5.0, 4.0, 3.0, 3.0)
    counts = await store.chart_data(meta.id, ChartSpec("bar", "year"))  # numbers: in x order, rows counted
    assert counts is not None and counts.categories == ("2023", "2024", "2025") and counts.series[0].values == (3, 2, 2)


async def test_larger_aggregates_and_other_kinds_stay_pngs(store: DatasetStore) -> None:
    meta = await store.register_frame(frame(21), name="df", thread=KEY, owner="U1")
    assert await store.chart_data(meta.id, ChartSpec("bar", "id", "value")) is None  # 21 groups
    assert await store.chart_data(meta.id, ChartSpec("line", "ts", "value")) is None  # 21 rows
    assert await store.chart_data(meta.id, ChartSpec("hist", "value")) is None
    small = await store.register_frame(frame(20), name="small", thread=KEY, owner="U1")
    line = await store.chart_data(small.id, ChartSpec("line", "id", "value"))
    assert line is not None and line.kind == "line" and len(line.categories) == 20
    assert line.categories[:2] == ("R00001", "R00002") and line.series[0].values[:3] == (0.0, 1.5, 3.0)
    assert await store.chart_data(small.id, ChartSpec("line", "id", "score")) is None  # a missing value
    with pytest.raises(DatasetError):
        await store.chart_data(small.id, ChartSpec("line", "id", "no-such-column"))
