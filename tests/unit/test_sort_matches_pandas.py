"""Sorted pages are exactly a stable pandas sort (missing values last, ties in row order), in both
directions, whether they come from the full order, from the batch extremes or from partial selection
while it is computed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from bot.datasets import extremes
from bot.datasets.local import LocalDatasetStore
from bot.datasets.model import SortSpec
from bot.datasets.tablefile import BATCH_ROWS, TOP_ROWS, TableFile, compute_sort, descending_sort, top_rows
from bot.messages import ThreadKey

KEY = ThreadKey("test", "T", "C", "1.0")
N = 3000


def columns() -> dict[str, list[object]]:
    rng = np.random.default_rng(5)
    floats: list[object] = [float(v) for v in rng.integers(0, 40, N)]  # many ties
    for i in rng.choice(N, 200, replace=False):
        floats[i] = float("nan") if i % 2 else None  # NaN and null: both missing
    words = ["", "a", "ab", "abc", "abcdefghij", "abcdefghijk", "b", "ba", "é", "zz" * 20, "A"]
    strings: list[object] = [words[i] for i in rng.integers(0, len(words), N)]
    for i in rng.choice(N, 150, replace=False):
        strings[i] = None
    ints: list[object] = [int(v) for v in rng.integers(-5, 5, N)]
    return {"f": floats, "s": strings, "i": ints}


def pandas_order(values: list[object], descending: bool) -> list[int]:
    series = pd.Series([np.nan if isinstance(v, float) and np.isnan(v) else v for v in values], dtype=object)
    series = series.astype("float64") if all(isinstance(v, (float, int)) or v is None for v in values) else series
    return list(series.sort_values(ascending=not descending, kind="stable", na_position="last").index)


@pytest.mark.parametrize("name", ["f", "s", "i"])
@pytest.mark.parametrize("descending", [False, True])
def test_full_orders_equal_a_stable_pandas_sort(name: str, descending: bool) -> None:
    values = columns()[name]
    column = pa.chunked_array([pa.array(values[: N // 2]), pa.array(values[N // 2 :])])
    order = compute_sort(column)
    if descending:
        order = descending_sort(order, column)
    assert list(order.positions(0, N)) == pandas_order(values, descending)


@pytest.mark.parametrize("name", ["f", "s", "i"])
@pytest.mark.parametrize("descending", [False, True])
def test_partial_selection_returns_the_rows_of_the_full_order(name: str, descending: bool) -> None:
    values = columns()[name]
    column = pa.chunked_array([pa.array(values)])
    expected = pandas_order(values, descending)
    for start, stop in [(0, 1), (0, 20), (20, 40), (980, TOP_ROWS)]:
        assert list(top_rows(column, start, stop, descending)) == expected[start:stop]
    assert top_rows(column, 0, TOP_ROWS + 1, descending) is None  # past the first pages: wait for the order


def test_partial_selection_declines_pages_that_reach_missing_values() -> None:
    column = pa.chunked_array([pa.array([1.0, None, float("nan"), 2.0])])
    assert top_rows(column, 0, 2, False) is not None and top_rows(column, 0, 3, False) is None


async def test_store_pages_before_and_after_the_full_order_match_pandas(tmp_path: Path) -> None:
    data = columns()
    frame = pd.DataFrame({"row": range(N), "f": pd.array(data["f"], dtype="Float64"), "s": data["s"]})
    store = LocalDatasetStore(tmp_path / "datasets")
    meta = await store.register_frame(frame, name="df", thread=KEY, owner="U1")
    for name in ("f", "s"):
        for descending in (False, True):
            spec = SortSpec(name, descending)
            expected = [str(r) for r in pandas_order(data[name], descending)]
            first = await store.page(meta.id, 1, 20, spec)  # may come from partial selection
            await store.sort_order(meta.id, name, descending)
            again = await store.page(meta.id, 1, 20, spec)  # from the full order
            late = await store.page(meta.id, 100, 20, spec)
            assert [r[0] for r in first.rows] == [r[0] for r in again.rows] == expected[:20]
            assert [r[0] for r in late.rows] == expected[1980:2000]
    await store.aclose()


@pytest.mark.parametrize("kind", ["wide ints", "narrow ints", "floats with few ties", "floats with many ties",
                                  "timestamps", "bools"])
def test_numeric_orders_equal_a_stable_pandas_sort(kind: str) -> None:
    rng = np.random.default_rng(11)
    raw = {
        "wide ints": rng.integers(-(2**40), 2**40, N),
        "narrow ints": rng.integers(0, 7, N),
        "floats with few ties": np.r_[rng.normal(0, 1, N - 20), np.zeros(20)],
        "floats with many ties": rng.integers(0, 50, N) / 4,
        "timestamps": rng.integers(0, 10**15, N).astype("datetime64[ns]"),
        "bools": rng.random(N) < 0.3,
    }[kind]
    mask = rng.random(N) < 0.05
    column = pa.chunked_array([pa.array(raw, mask=mask)])
    series = pd.Series(column.to_pandas())
    for descending in (False, True):
        order = compute_sort(column)
        if descending:
            order = descending_sort(order, column)
        expected = list(series.sort_values(ascending=not descending, kind="stable", na_position="last").index)
        assert list(order.positions(0, N)) == expected


def few_ties() -> dict[str, list[object]]:
    """Columns where ties are rare (the packed-key sort answers alone, fixing only a few groups):
    values that differ only in their last bits, -0.0 beside 0.0, negatives, huge integer ranges."""
    rng = np.random.default_rng(11)
    base = rng.normal(0, 1e6, N)
    base[rng.choice(N, 40, replace=False)] = 1.0
    base[rng.choice(N, 20, replace=False)] = np.nextafter(1.0, 2.0)  # equal in every leading bit
    base[rng.choice(N, 10, replace=False)] = -0.0
    base[rng.choice(N, 10, replace=False)] = 0.0
    floats: list[object] = [float(v) for v in base]
    for i in rng.choice(N, 50, replace=False):
        floats[i] = float("nan") if i % 2 else None
    big = rng.integers(-(2**62), 2**62, N)
    big[rng.choice(N, 30, replace=False)] = 2**62 + 1
    big[rng.choice(N, 30, replace=False)] = 2**62 + 2
    return {"f": floats, "i": [int(v) for v in big]}


@pytest.mark.parametrize("name", ["f", "i"])
@pytest.mark.parametrize("descending", [False, True])
def test_orders_with_rare_ties_equal_a_stable_pandas_sort(name: str, descending: bool) -> None:
    values = few_ties()[name]
    column = pa.chunked_array([pa.array(values[: N // 3]), pa.array(values[N // 3 :])])
    order = compute_sort(column)
    if descending:
        order = descending_sort(order, column)
    if name == "i":  # pandas would go through float64 and merge neighbours; Python ints are exact
        expected = sorted(range(N), key=lambda r: (-values[r] if descending else values[r], r))  # type: ignore[operator]
    else:
        expected = pandas_order(values, descending)
    assert list(order.positions(0, N)) == expected


@pytest.mark.parametrize("descending", [False, True])
def test_first_rows_of_a_large_column_from_a_sampled_bound_equal_the_full_order(descending: bool) -> None:
    rng = np.random.default_rng(3)
    n = 300_000  # above the size where a sample guesses the bound
    codes = rng.integers(0, 2_000_000, n)
    strings = pa.array([f"C{c:07d}" if c % 97 else None for c in codes])  # ties, nulls, one width
    floats = pa.array(np.where(codes % 89 == 0, np.nan, np.round(codes / 7.0, 0)))  # ties and NaN
    for values in (strings, floats):
        column = pa.chunked_array([values[: n // 2], values[n // 2 :]])
        order = compute_sort(column)
        if descending:
            order = descending_sort(order, column)
        for start, stop in [(0, 20), (40, 60), (980, TOP_ROWS)]:
            assert list(top_rows(column, start, stop, descending)) == list(order.positions(start, stop))


async def test_a_late_sorted_page_asked_first_waits_for_the_order_and_matches_pandas(tmp_path: Path) -> None:
    data = columns()
    frame = pd.DataFrame({"row": range(N), "f": pd.array(data["f"], dtype="Float64")})
    store = LocalDatasetStore(tmp_path / "datasets")
    meta = await store.register_frame(frame, name="df", thread=KEY, owner="U1")
    for descending in (False, True):
        late = await store.page(meta.id, 100, 20, SortSpec("f", descending))  # past partial selection
        assert [r[0] for r in late.rows] == [str(r) for r in pandas_order(data["f"], descending)][1980:2000]
    await store.aclose()


async def test_first_sorted_pages_after_registration_read_a_few_batches_and_match_pandas(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a dataset's summaries are in, its first sorted pages come from the batches that can hold
    them (the whole column is not read before the page is answered) and hold exactly a stable pandas
    sort's rows; without the extremes file the same rows come by selection over the whole column."""
    rng = np.random.default_rng(9)
    n = 24 * BATCH_ROWS  # 24 batches: room for a 20-row page from the extremes
    codes = rng.integers(0, 5_000, n)
    floats = pd.array(np.where(codes % 53 == 0, np.nan, codes / 4), dtype="Float64")
    floats[codes % 61 == 0] = pd.NA
    frame = pd.DataFrame({"row": range(n), "f": floats, "s": [f"k{c:04d}" if c % 59 else None for c in codes]})
    store = LocalDatasetStore(tmp_path / "datasets")
    meta = await store.register_frame(frame, name="df", thread=KEY, owner="U1")
    await store.summaries(meta.id)
    whole_columns: list[list[str]] = []
    read = TableFile.columns

    def reading(table: TableFile, names: list[str]) -> pa.Table:
        whole_columns.append(list(names))
        return read(table, names)

    monkeypatch.setattr(TableFile, "columns", reading)

    def expected(column: str, descending: bool) -> list[str]:
        ordered = frame[column].sort_values(ascending=not descending, kind="stable", na_position="last")
        return [str(r) for r in ordered.index[:20]]

    for column in "fs":
        for descending in (False, True):
            whole_columns.clear()
            page = await store.page(meta.id, 1, 20, SortSpec(column, descending))
            assert whole_columns == []  # answered before the full sort (started right after) reads the column
            assert [r[0] for r in page.rows] == expected(column, descending)
            await store.sort_order(meta.id, column, descending)
    await store.aclose()
    for path in (tmp_path / "datasets" / meta.id).glob("*.npy"):
        path.unlink()  # no saved orders: the next first page is selected again
    (tmp_path / "datasets" / meta.id / extremes.EXTREMES_FILE).unlink()
    fresh = LocalDatasetStore(tmp_path / "datasets")
    whole_columns.clear()
    page = await fresh.page(meta.id, 1, 20, SortSpec("f"))
    assert whole_columns == [["f"]]  # selected from the whole column
    assert [r[0] for r in page.rows] == expected("f", False)
    await fresh.aclose()
