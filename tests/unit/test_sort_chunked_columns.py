"""A column read from a data file arrives as many chunks (one per 8,192-row batch); its sort order is
built from the chunks in place and must still equal a stable pandas sort: ties in row order, -0.0 tied
with 0.0, heavy ties falling back to the tie-fixing sort, and chunk and step boundaries anywhere."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from bot.datasets import bucketsort, packedsort, stringsort
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
    monkeypatch.setattr(packedsort, "STEP", 1_000)  # key-building steps that straddle chunk boundaries
    values = columns()[name]
    order = compute_sort(chunked(values))
    expected = pd.Series(values).sort_values(kind="stable").index.to_numpy()
    assert order.valid == N
    assert np.array_equal(np.asarray(order.perm), expected)


@pytest.mark.usefixtures("sort_path")
def test_order_of_a_chunked_string_column_equals_a_stable_pandas_sort(monkeypatch: pytest.MonkeyPatch) -> None:
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
        "all digits but one longer value": [f"{c % 100:02d}" if i != 5_000 else "100" for i, c in enumerate(codes)],
        "digits past the key window": [f"{c:08d}{c % 97:02d}" for c in codes],
        "one value repeated": ["00042"] * N,
    }


@pytest.mark.parametrize("name", list(digit_columns()))
@pytest.mark.usefixtures("sort_path")
def test_string_digits_of_one_width_sort_as_strings_do(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Digit strings of one width are sorted as the numbers they spell: the order must still be the
    strings' own (byte order, nulls last, ties in row order), and anything not all digits must not
    take that path wrongly."""
    two_threads(monkeypatch)
    values = digit_columns()[name]
    expected = pd.Series(values, dtype=object).sort_values(kind="stable", na_position="last").index.to_numpy()
    assert np.array_equal(np.asarray(compute_sort(digit_chunks(values)).perm), expected)


def two_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Digit numbers made by two threads (whatever the machine), in blocks of several chunks, and from
    a chunk larger than a block."""
    monkeypatch.setattr(bucketsort, "THREADS", 2)
    monkeypatch.setattr(stringsort, "STEP", 700)
    monkeypatch.setattr(stringsort, "BLOCK", 1_000)


def digit_chunks(values: list[str | None]) -> pa.ChunkedArray:
    return pa.chunked_array([pa.array(values[a:b], pa.string()) for a, b in
                             [(0, 0), (0, 1), (1, 2_345), (2_345, N)]], type=pa.string())


@pytest.mark.parametrize(("name", "skip"), [("ids of 8 digits after a common letter", 1),
                                            ("ids of 5 digits (shorter than the key window)", 2)])
def test_ids_of_one_width_are_read_as_the_numbers_their_digits_spell(name: str, skip: int,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The digit path is taken for ids (not only its result checked): each row's number is its
    digits', and the bounds are the smallest and largest of them."""
    two_threads(monkeypatch)
    values = [v for v in digit_columns()[name] if v is not None]
    chunks = [c for c in digit_chunks(values).chunks if len(c)]
    width = len(values[0])
    assert stringsort._shape(digit_chunks(values), chunks) == (width, skip)
    made = stringsort._digit_numbers(chunks, len(values), skip, width)
    assert made is not None
    numbers, lo, hi = made
    expected = np.array([int(v[skip:]) for v in values])
    assert np.array_equal(numbers, expected)
    assert (lo, hi) == (expected.min(), expected.max())


def test_a_letter_in_another_threads_share_turns_the_digit_path_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """One value that is not all digits, in the last thread's chunks, and the column is not read as
    numbers (its strings' order is then kept by the general path, checked above)."""
    two_threads(monkeypatch)
    values = [f"{i % 100:02d}" for i in range(N)]
    values[N - 3] = "0x"
    chunks = [c for c in digit_chunks(values).chunks if len(c)]
    assert stringsort._digit_numbers(chunks, N, 0, 2) is None


def test_ints_of_a_wide_range_with_many_ties_keep_the_packed_sort() -> None:
    """Integers whose range fits beside the row numbers lose no bits in the packed sort: however many
    of them tie, its order is exact, and it does not give way to a slower stable sort."""
    values = columns()["ints of a wide range, most of them tied"]
    parts = [values[a:b] for a, b in itertools.pairwise([0, 2_500, N])]
    order = packedsort.packed_order(parts)
    assert order is not None
    assert np.array_equal(order, np.argsort(values, kind="stable"))
