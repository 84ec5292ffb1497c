"""The sorts' scratch pool: a later sort reuses the memory of an earlier one's scratch arrays, two sorts
at once never share it, the pool keeps no more than its cap and lets everything go after its keep
time, and a sort on reused (dirty) memory is still exact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from bot.datasets import bucketsort
from bot.datasets.scratch import SCRATCH, ScratchPool
from bot.datasets.tablefile import compute_sort


def address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def test_a_later_lease_reuses_the_memory_of_an_earlier_one() -> None:
    pool = ScratchPool(keep_seconds=60)
    with pool.arrays((1000, np.uint64), (500, np.int32)) as (a, b):
        first = {address(a), address(b)}
        assert a.dtype == np.uint64 and len(a) == 1000 and b.dtype == np.int32 and len(b) == 500
    with pool.arrays((900, np.uint64)) as (c,):
        assert address(c) in first  # the 8,000-byte buffer: no new pages for the next sort
    assert pool.kept_bytes == 8000 + 2000


def test_leases_at_the_same_time_get_separate_memory() -> None:
    pool = ScratchPool(keep_seconds=60)
    with pool.arrays((1000, np.uint64)):
        pass
    with pool.arrays((1000, np.uint64)) as (b,), pool.arrays((1000, np.uint64)) as (c,):
        b[:] = 1
        c[:] = 2
        assert address(b) != address(c) and (b == 1).all()  # the kept buffer went to one lease only


def test_the_pool_keeps_the_largest_buffers_up_to_its_cap() -> None:
    pool = ScratchPool(keep_seconds=60, max_bytes=10_000)
    with pool.arrays((1000, np.uint64), (200, np.uint64), (100, np.uint64)):
        pass
    assert pool.kept_bytes == 8000 + 1600  # the 800-byte one would pass the cap


def test_kept_buffers_are_let_go_after_the_keep_time() -> None:
    pool = ScratchPool(keep_seconds=0.05)
    with pool.arrays((1000, np.uint64)):
        pass
    assert pool.kept_bytes == 8000
    assert pool.released.wait(10)
    assert pool.kept_bytes == 0


def test_a_sort_on_reused_dirty_scratch_memory_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kept buffers hold the last sort's leftovers: a bucketed sort (small buckets so 20K rows take
    that path) of floats and of ids on them still equals a stable pandas sort."""
    monkeypatch.setattr(bucketsort, "MIN_BUCKETS", 4)
    monkeypatch.setattr(bucketsort, "BUCKET_KEYS", 64)
    monkeypatch.setattr(bucketsort, "CHUNK_KEYS", 3_000)
    monkeypatch.setattr(bucketsort, "SAMPLE_KEYS", 500)
    n = 20_000
    rng = np.random.default_rng(9)
    floats = rng.normal(0, 1, n)
    floats[rng.choice(n, 100, replace=False)] = 0.5  # a few ties: fixed after the packed sort
    ids = [f"C{v:08d}" for v in rng.integers(0, 25_000_000, n)]
    for _ in range(2):
        with SCRATCH.arrays((n, np.uint64), (n, np.uint64)) as (a, b):
            a.fill(np.uint64(2**64 - 1))  # leftovers that would sort last, or first as rows
            b.fill(np.uint64(7))
        for values in (floats, ids):
            column = pa.chunked_array([pa.array(values[:7_000]), pa.array(values[7_000:])])
            expected = pd.Series(values).sort_values(kind="stable").index.to_numpy()
            assert np.array_equal(np.asarray(compute_sort(column).perm), expected)
