"""Rows taken from a many-chunk column chunk by chunk (the first sorted page, string tie fixes and
chart points read a few rows of a 50M-row column this way) are exactly the values Arrow's own
``take`` gives: any row order, repeats, nulls, empty chunks, dictionaries, every type the store keeps."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest

from bot.datasets.gather import take

CUTS = [0, 0, 1, 700, 700, 2_000, 2_001, 3_000]  # uneven chunks: empty ones, one of a single row


def chunked(values: pa.Array) -> pa.ChunkedArray:
    return pa.chunked_array([values.slice(a, b - a) for a, b in itertools.pairwise(CUTS)], type=values.type)


def kinds() -> dict[str, pa.Array]:
    rng = np.random.default_rng(5)
    n = CUTS[-1]
    strings = pa.array([None if i % 13 == 0 else "v" * (i % 9) + str(i) for i in range(n)], pa.large_string())
    return {
        "floats with nulls": pa.array(rng.normal(size=n), mask=rng.random(n) < 0.1),
        "large strings with nulls": strings,
        "strings": pa.array([f"C{i:07d}" for i in rng.integers(0, 10**7, n)]),
        "timestamps": pa.array(rng.integers(0, 2**50, n).astype("datetime64[ns]")),
        "dictionary per chunk": pa.array([f"region-{i % 7}" for i in range(n)]),  # encoded per chunk below
    }


@pytest.mark.parametrize("name", list(kinds()))
@pytest.mark.parametrize("rows", ["shuffled with repeats", "ascending", "one row", "none"])
def test_rows_taken_chunk_by_chunk_equal_arrows_take(name: str, rows: str) -> None:
    values = kinds()[name]
    column = chunked(values)
    if name == "dictionary per chunk":  # each chunk with its own dictionary, as a data file's batches
        column = pa.chunked_array([c.dictionary_encode() for c in column.chunks])
    rng = np.random.default_rng(9)
    picks = {
        "shuffled with repeats": rng.integers(0, len(column), 500),
        "ascending": np.sort(rng.choice(len(column), 400, replace=False)),
        "one row": np.array([2_000]),
        "none": np.array([], np.int64),
    }[rows]
    got = take(column, picks)
    assert got.type == column.type
    assert got.to_pylist() == column.take(pa.array(picks)).to_pylist()


def test_rows_past_the_column_are_refused() -> None:
    column = chunked(pa.array(np.arange(CUTS[-1])))
    with pytest.raises(IndexError):
        take(column, np.array([0, CUTS[-1]]))
    with pytest.raises(IndexError):
        take(column, np.array([-1]))
