"""The bucketed sort of large key arrays gives exactly numpy's sort and stable argsort, whatever the
keys look like (uniform, skewed, heavily tied, all equal, past the sampled range), with bucket and chunk
sizes made small so a few thousand keys take the bucketed path."""

from __future__ import annotations

import numpy as np
import pytest

from bot.datasets import bucketsort

N = 20_000
SIZES = {"bucket_keys": 256, "chunk_keys": 3_000, "sample_keys": 500}  # 78 buckets; chunks not dividing N


def key_sets() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    skewed = (rng.lognormal(3, 1, N) * 1e6).astype(np.uint64)
    extremes = rng.integers(0, 1000, N, dtype=np.uint64)
    extremes[::997] = np.uint64(2**64 - 1)  # a few keys far past the rest, mostly missed by the sample
    return {
        "uniform": rng.integers(0, 2**64 - 1, N, dtype=np.uint64, endpoint=True),
        "skewed": skewed,
        "tied": rng.integers(0, 12, N).astype(np.uint64) << np.uint64(50),
        "equal": np.full(N, 42, np.uint64),
        "extremes": extremes,
        "sorted": np.arange(N, dtype=np.uint64),
        "reversed": np.arange(N, dtype=np.uint64)[::-1].copy(),
    }


@pytest.mark.parametrize("name", list(key_sets()))
def test_bucketed_sort_equals_numpy_sort(name: str) -> None:
    keys = key_sets()[name]
    before = keys.copy()
    assert np.array_equal(bucketsort.sort(keys, **SIZES), np.sort(keys))
    assert np.array_equal(keys, before)  # the input is left as it was


@pytest.mark.parametrize("name", list(key_sets()))
def test_bucketed_argsort_keeps_equal_keys_in_row_order(name: str) -> None:
    keys = key_sets()[name]
    assert np.array_equal(bucketsort.stable_argsort(keys, **SIZES), np.argsort(keys, kind="stable"))


def test_small_arrays_take_numpy_sort_unchanged() -> None:
    keys = np.array([5, 1, 5, 0], np.uint64)
    assert bucketsort.sort(keys).tolist() == [0, 1, 5, 5]
    assert bucketsort.stable_argsort(keys).tolist() == [3, 1, 0, 2]
    assert bucketsort.sort(np.zeros(0, np.uint64)).tolist() == []
