"""A column read from a data file arrives as many chunks (one per 8,192-row batch); its sort order is
built from the chunks in place and must still equal a stable pandas sort: ties in row order, -0.0 tied
with 0.0, heavy ties falling back to the tie-fixing sort, and chunk and step boundaries anywhere."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from bot.datasets import bucketsort, tablefile
from bot.datasets.tablefile import compute_sort

N = 6_000


@pytest.fixture(params=["numpy sort", "bucketed sort"])
def sort_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each order computed by numpy's sort (small columns) and by the bucketed one (over 2M keys),
    made to take over at this size with small buckets."""
    if request.param == "bucketed sort":
        monkeypatch.setattr(bucketsort, "MIN_BUCKETS", 4)
        monkeypatch.setattr(bucketsort, "BUCKET_KEYS", 64)
        monkeypatch.setattr(bucketsort, "CHUNK_KEYS", 1_000)
        monkeypatch.setattr(bucketsort, "SAMPLE_KEYS", 300)


def chunked(values: np.ndarray) -> pa.ChunkedArray:
    cuts = [0, 1, 777, 2_500, 2_501, 5_000, N]  # uneven chunks, one of a single row
    return pa.chunked_array([pa.array(values[a:b]) for a, b in itertools.pairwise(cuts)])


def columns() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    floats = rng.normal(0, 1e6, N)
    floats[rng.choice(N, 300, replace=False)] = 0.0
    floats[rng.choice(N, 300, replace=False)] = -0.0
    floats[rng.choice(N, 50, replace=False)] = floats[7]
    few = rng.normal(0, 1e6, N)
    few[rng.choice(N, 60, replace=False)] = 0.0
    few[rng.choice(N, 60, replace=False)] = -0.0
    near = rng.choice(N, 40, replace=False)
    few[near[20:]] = np.nextafter(few[near[:20]], np.inf)  # differ only in bits the packed sort drops
    return {
        "floats with rare ties and signed zeros": floats,
        "floats with few ties (fixed after the packed sort)": few,
        "wide ints": rng.integers(-(2**62), 2**62, N),
        "ints of a wide range, most of them tied": rng.choice(rng.integers(-(2**40), 2**40, 50), N),
        "heavily tied floats": rng.integers(0, 30, N).astype(np.float64) / 4,
        "float32": rng.normal(0, 1, N).astype(np.float32),
        "timestamps": (rng.integers(0, 2**50, N)).astype("datetime64[ns]"),
    }


@pytest.mark.parametrize("name", list(columns()))
@pytest.mark.usefixtures("sort_path")
def test_order_of_a_chunked_column_equals_a_stable_pandas_sort(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tablefile, "STEP", 1_000)  # key-building steps that straddle chunk boundaries
    values = columns()[name]
    order = compute_sort(chunked(values))
    expected = pd.Series(values).sort_values(kind="stable").index.to_numpy()
    assert order.valid == N
    assert np.array_equal(np.asarray(order.perm), expected)


@pytest.mark.usefixtures("sort_path")
def test_order_of_a_chunked_string_column_equals_a_stable_pandas_sort(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.datasets import stringsort

    monkeypatch.setattr(stringsort, "STEP", 700)
    rng = np.random.default_rng(3)
    ids = [f"C{v:07d}" for v in rng.integers(0, 900, N)]  # one width: the strided path, many ties
    wide_ids = [f"C{v:08d}" for v in rng.integers(0, 25_000_000, N)]  # one width filling the 8-byte window
    words = ["", "a", "ab", "abcdefghij", "abcdefghijk", "b", "é", "zz" * 9, "A"]
    mixed = [words[i] for i in rng.integers(0, len(words), N)]  # mixed widths: ties re-sorted by Arrow
    for values in (ids, wide_ids, mixed):
        column = pa.chunked_array([pa.array(values[a:b], pa.string()) for a, b in
                                   [(0, 0), (0, 1), (1, 2_345), (2_345, N)]], type=pa.string())
        expected = pd.Series(values).sort_values(kind="stable").index.to_numpy()
        assert np.array_equal(np.asarray(compute_sort(column).perm), expected)


@pytest.mark.parametrize("threads", [2, 3])
def test_a_large_column_sorted_by_several_threads_equals_a_stable_sort(threads: int,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A large sort shares its chunks and buckets among threads, which make their keys at the
    same time: each must see only its own."""
    monkeypatch.setattr(bucketsort, "THREADS", threads)
    monkeypatch.setattr(bucketsort, "CHUNK_KEYS", 1 << 14)  # many chunks, so the threads' chunks interleave
    monkeypatch.setattr(bucketsort, "BUCKET_KEYS", 1 << 12)  # the bucketed path from 262K rows
    values = np.random.default_rng(4).lognormal(3, 1, 600_000)
    values[::1000] = values[7]  # ties, fixed after the bucketed sort
    column = pa.chunked_array([values[s : s + 8_192] for s in range(0, len(values), 8_192)])
    assert np.array_equal(np.asarray(compute_sort(column).perm), np.argsort(values, kind="stable"))


def digit_columns() -> dict[str, list[str | None]]:
    rng = np.random.default_rng(8)
    codes = rng.integers(0, 10**8, N)
    return {
        "ids of 8 digits after a common letter": [f"C{c:08d}" for c in codes],
        "ids of 5 digits (shorter than the key window)": [f"ID{c % 10**5:05d}" for c in codes],
        "one digit": [str(c % 10) for c in codes],
        "digits with nulls and ties": [None if c % 11 == 0 else f"{c % 700:04d}" for c in codes],
        # ":" is the byte after "9": read as a digit, "0:" would be 10 and tie with the "10"s before it.
        "all digits but a few values": [f"{c % 100:02d}" if i % 1_000 != 999 else "0:" for i, c in enumerate(codes)],
        "all digits but a slash": [f"{c % 100:02d}" if i != 5_000 else "0/" for i, c in enumerate(codes)],
        "digits past the key window": [f"{c:08d}{c % 97:02d}" for c in codes],
        "one value repeated": ["00042"] * N,
    }


@pytest.mark.parametrize("name", list(digit_columns()))
@pytest.mark.usefixtures("sort_path")
def test_string_digits_of_one_width_sort_as_strings_do(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Digit strings of one width are sorted as the numbers they spell: the order must still be the
    strings' own (byte order, nulls last, ties in row order), and anything not all digits must not
    take that path wrongly."""
    from bot.datasets import stringsort

    monkeypatch.setattr(stringsort, "STEP", 700)
    values = digit_columns()[name]
    column = pa.chunked_array([pa.array(values[a:b], pa.string()) for a, b in
                               [(0, 0), (0, 1), (1, 2_345), (2_345, N)]], type=pa.string())
    expected = pd.Series(values, dtype=object).sort_values(kind="stable", na_position="last").index.to_numpy()
    assert np.array_equal(np.asarray(compute_sort(column).perm), expected)


def test_ints_of_a_wide_range_with_many_ties_keep_the_packed_sort() -> None:
    """Integers whose range fits beside the row numbers lose no bits in the packed sort: however many
    of them tie, its order is exact, and it does not give way to a slower stable sort."""
    values = columns()["ints of a wide range, most of them tied"]
    parts = [values[a:b] for a, b in itertools.pairwise([0, 2_500, N])]
    order = tablefile._packed_order(parts)
    assert order is not None
    assert np.array_equal(order, np.argsort(values, kind="stable"))
