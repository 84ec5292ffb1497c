"""First sorted pages from per-batch extremes (``bot.datasets.extremes``): exactly the rows the full
stable order holds there (nulls and NaN last, ties in row order, both directions), read from a few
batches."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from bot.datasets import extremes
from bot.datasets.tablefile import compute_sort, descending_sort

BATCH = 50
N = 60_000  # 1,200 batches: enough for the deepest first page (1,000 rows)


def cases() -> dict[str, pa.Array]:
    rng = np.random.default_rng(5)
    floats = rng.normal(0, 100, N)
    floats[rng.random(N) < 0.05] = np.nan
    floats[rng.choice(N, 500, replace=False)] = 0.0
    floats[rng.choice(N, 500, replace=False)] = -0.0
    words = np.array(["", "a", "ab", "abc", "b", "é", "zz" * 9, "A", "ab\x00"])
    strings = words[rng.integers(0, len(words), N)].tolist()
    ids = [f"C{v:07d}" for v in rng.integers(0, 10**7, N)]
    return {
        "floats with NaN, nulls, signed zeros": pa.array(floats, mask=rng.random(N) < 0.03),
        "ints sorted ascending": pa.array(np.arange(N) // 3),
        "ints sorted descending": pa.array((N - np.arange(N)) // 3),
        "few distinct ints (ties everywhere)": pa.array(rng.integers(0, 4, N)),
        "one value": pa.array(np.full(N, 7.5)),
        "short strings with nulls": pa.array([None if i % 17 == 0 else s for i, s in enumerate(strings)]),
        "ids": pa.array(ids),
        "bools": pa.array(rng.random(N) < 0.5),
        "timestamps": pa.array(rng.integers(0, 2**60, N).astype("datetime64[ns]")),
        "dictionary strings": pa.array(strings).dictionary_encode(),
    }


def batches_of(values: pa.Array) -> list[pa.Array]:
    return [values.slice(s, BATCH) for s in range(0, len(values), BATCH)]


def bounds_of(values: pa.Array, descending: bool, tmp_path: Path) -> pa.Array:
    """The extremes as the store keeps them: summarised, saved and loaded again."""
    table = extremes.summarise(lambda name: batches_of(values), ["c"])
    extremes.save(tmp_path, table)
    bounds = extremes.bounds_of(extremes.load(tmp_path), "c", descending)
    assert bounds is not None
    return bounds


def reader(parts: list[pa.Array]) -> Callable[[list[int]], list[pa.Array]]:
    return lambda ids: [parts[i] for i in ids]


def full_order(values: pa.Array, descending: bool) -> np.ndarray:
    column = pa.chunked_array(batches_of(values))
    ascending = compute_sort(column)
    return np.asarray((descending_sort(ascending, column) if descending else ascending).perm)


@pytest.mark.parametrize("name", list(cases()))
@pytest.mark.parametrize("descending", [False, True])
def test_first_pages_are_the_full_stable_orders_rows(name: str, descending: bool, tmp_path: Path) -> None:
    values = cases()[name]
    bounds = bounds_of(values, descending, tmp_path)
    parts = batches_of(values)
    expected = full_order(values, descending)
    for start, stop in [(0, 20), (20, 40), (980, 1000)]:
        for first_round in (1, 8):
            got = extremes.first_rows(reader(parts), bounds, start, stop, descending, BATCH, first_round=first_round)
            assert got is not None
            assert np.array_equal(got, expected[start:stop]), (name, descending, start, first_round)


@pytest.mark.parametrize(("name", "most"), [("floats with NaN, nulls, signed zeros", 60), ("ints sorted ascending", 2),
                                            ("ids", 60)])
def test_a_first_page_reads_a_few_batches(name: str, most: int, tmp_path: Path) -> None:
    """The point of the extremes: page 1 of 1,200 batches reads a few dozen of them (sorted data: one
    or two), not the column."""
    values = cases()[name]
    parts = batches_of(values)
    read: list[int] = []

    def batches(ids: list[int]) -> list[pa.Array]:
        read.extend(ids)
        return [parts[i] for i in ids]

    got = extremes.first_rows(batches, bounds_of(values, False, tmp_path), 0, 20, False, BATCH)
    assert got is not None and np.array_equal(got, full_order(values, False)[:20])
    assert len(read) <= most, len(read)


def test_fewer_batches_with_values_than_rows_asked_is_left_to_the_caller(tmp_path: Path) -> None:
    values = pa.array([1.0 if i < 5 * BATCH else None for i in range(20 * BATCH)])
    parts = batches_of(values)
    bounds = bounds_of(values, False, tmp_path)
    assert extremes.first_rows(reader(parts), bounds, 0, 6, False, BATCH) is None
    got = extremes.first_rows(reader(parts), bounds, 0, 5, False, BATCH)
    assert got is not None and got.tolist() == [0, 1, 2, 3, 4]


def test_more_batches_than_the_caller_allows_are_left_to_it(tmp_path: Path) -> None:
    """A store reading batches over the network caps them: past the cap it waits for the full order."""
    values = cases()["floats with NaN, nulls, signed zeros"]
    parts = batches_of(values)
    bounds = bounds_of(values, False, tmp_path)
    assert extremes.first_rows(reader(parts), bounds, 0, 20, False, BATCH, most=8) is None
    assert extremes.first_rows(reader(parts), bounds, 0, 20, False, BATCH, most=60) is not None


def test_a_dataset_without_extremes_or_without_the_column_has_none(tmp_path: Path) -> None:
    assert extremes.load(tmp_path) is None
    extremes.save(tmp_path, extremes.summarise(lambda name: [pa.array([1, 2])], ["c"]))
    assert extremes.bounds_of(extremes.load(tmp_path), "other", False) is None
    assert extremes.bounds_of(extremes.load(tmp_path), "c", True) is not None
    assert extremes.from_bytes(b"not an Arrow file") is None


def test_a_column_arrow_takes_no_minimum_of_has_no_extremes_and_the_others_keep_theirs() -> None:
    """Durations have no ``min_max`` kernel: their first sorted pages come another way, and the other
    columns' extremes are still made (the summary does not fail as a whole)."""
    columns = {"d": pa.array([datetime.timedelta(seconds=s) for s in range(3)]), "c": pa.array([3, 1, 2])}
    table = extremes.summarise(lambda name: [columns[name]], ["d", "c"])
    assert extremes.bounds_of(table, "d", False) is None
    bounds = extremes.bounds_of(table, "c", False)
    assert bounds is not None and bounds.to_pylist() == [1]
