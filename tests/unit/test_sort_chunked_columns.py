"""A column read from a data file arrives as many chunks (one per 8,192-row batch); its sort order is
built from the chunks in place and must still equal a stable pandas sort: ties in row order, -0.0 tied
with 0.0, heavy ties falling back to the tie-fixing sort, and chunk and step boundaries anywhere."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from bot.datasets import tablefile
from bot.datasets.tablefile import compute_sort

N = 6_000


def chunked(values: np.ndarray) -> pa.ChunkedArray:
    cuts = [0, 1, 777, 2_500, 2_501, 5_000, N]  # uneven chunks, one of a single row
    return pa.chunked_array([pa.array(values[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)])


def columns() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    floats = rng.normal(0, 1e6, N)
    floats[rng.choice(N, 300, replace=False)] = 0.0
    floats[rng.choice(N, 300, replace=False)] = -0.0
    floats[rng.choice(N, 50, replace=False)] = floats[7]
    return {
        "floats with rare ties and signed zeros": floats,
        "wide ints": rng.integers(-(2**62), 2**62, N),
        "heavily tied floats": rng.integers(0, 30, N).astype(np.float64) / 4,
        "float32": rng.normal(0, 1, N).astype(np.float32),
        "timestamps": (rng.integers(0, 2**50, N)).astype("datetime64[ns]"),
    }


@pytest.mark.parametrize("name", list(columns()))
def test_order_of_a_chunked_column_equals_a_stable_pandas_sort(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tablefile, "STEP", 1_000)  # key-building steps that straddle chunk boundaries
    values = columns()[name]
    order = compute_sort(chunked(values))
    expected = pd.Series(values).sort_values(kind="stable").index.to_numpy()
    assert order.valid == N
    assert np.array_equal(np.asarray(order.perm), expected)
