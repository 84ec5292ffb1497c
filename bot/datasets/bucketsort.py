"""Sorting of large ``uint64`` key arrays in time proportional to their length.

numpy's sorts cost more per key the larger the array (a 64K-key sort runs in L2, a 10M-key sort
streams memory at every level of its recursion): measured on the 2-core benchmark machine, ~37 ns a
key at 64K keys, ~60 ns at 1M, 65-93 ns at 10M and more at 50M, so a 50M-key sort took ~6x a 10M one.
Here the keys are first split by their leading bits into buckets of ~64K keys (bucket boundaries
drawn from a histogram of a sample, so skewed keys still give even buckets), then each bucket is
sorted on its own, in cache. The split reads the keys in 1M-key chunks: each chunk is grouped by
bucket with numpy's radix sort of its 16-bit bucket numbers and copied out slice by slice, so all
memory access is sequential. The cost per key no longer grows with the array (a 50M sort is ~4.5x a
10M one), and at 10M it is no slower than ``np.sort``.

The result is exactly ``np.sort(keys)`` / ``np.argsort(keys, kind="stable")``: buckets are ordered
ranges of keys, and keys keep their row order within a bucket until the (stable) bucket sort.
"""

from __future__ import annotations

import numpy as np

#: Keys per bucket aimed at: sorted in L2 (512 KB of keys), where numpy's sort is fastest per key.
BUCKET_KEYS = 1 << 16
#: Keys grouped by bucket at a time (8 MB: in the last-level cache).
CHUNK_KEYS = 1 << 20
#: Below this many buckets' worth of keys (2M keys) a plain numpy sort is as fast.
MIN_BUCKETS = 32
#: Keys sampled for the histogram that places bucket boundaries.
SAMPLE_KEYS = 1 << 18
_PREFIX_BITS = 16


class _Buckets:
    """Which bucket each key falls in: a table from the top 16 bits of the key (its range stretched
    to fill 64 bits) to a bucket number, nondecreasing, with boundaries placed so a sample of the
    keys fills the buckets evenly."""

    def __init__(self, keys: np.ndarray, bucket_keys: int, sample_keys: int) -> None:
        n = len(keys)
        lo, hi = int(keys.min()), int(keys.max())
        self.base = np.uint64(lo)
        # Stretched so the keys' range fills 64 bits: the prefix then tells apart as many keys as it can.
        self.lift = np.uint64(64 - (hi - lo).bit_length()) if hi > lo else np.uint64(0)
        self.drop = np.uint64(64 - _PREFIX_BITS)
        sample = keys[:: max(1, n // sample_keys)]
        hist = np.bincount(self._prefix(sample), minlength=1 << _PREFIX_BITS)
        self.count = int(min(max(1, n // bucket_keys), 1 << 15))
        before = np.cumsum(hist) - hist
        # Prefixes past the last sampled one go to the last bucket; the table never decreases, so
        # buckets stay ordered ranges of keys.
        self.table = np.minimum(before * self.count // max(1, len(sample)), self.count - 1).astype(np.uint16)

    def _prefix(self, keys: np.ndarray) -> np.ndarray:
        return (((keys - self.base) << self.lift) >> self.drop).astype(np.intp)

    def of(self, keys: np.ndarray) -> np.ndarray:
        """The bucket number of each of ``keys`` (a chunk: temporaries stay in cache)."""
        return self.table[self._prefix(keys)]


def _split(keys: np.ndarray, rows: bool, bucket_keys: int, chunk_keys: int, sample_keys: int,
           ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """``keys`` grouped by bucket, keeping their order within each (and their row numbers when
    ``rows``), and where each bucket starts (plus the end)."""
    n = len(keys)
    buckets = _Buckets(keys, bucket_keys, sample_keys)
    # Bucket numbers are computed twice per chunk (to count, then to move) rather than kept: a full
    # array of them would be one more large allocation, whose first touch costs more than the sums.
    counts = [np.bincount(buckets.of(keys[s : s + chunk_keys]), minlength=buckets.count)
              for s in range(0, n, chunk_keys)]
    bounds = np.zeros(buckets.count + 1, np.int64)
    np.cumsum(np.sum(counts, axis=0), out=bounds[1:])
    at = bounds[:-1].copy()  # where each bucket's next key goes
    grouped = np.empty_like(keys)
    row_type = np.int32 if n < 2**31 else np.int64
    grouped_rows = np.empty(n, row_type) if rows else None
    for s, chunk_counts in zip(range(0, n, chunk_keys), counts, strict=True):
        order = np.argsort(buckets.of(keys[s : s + chunk_keys]), kind="stable")  # radix sort: linear
        chunk = keys[s : s + chunk_keys][order]
        chunk_rows = (order + s).astype(row_type) if rows else None
        offset = 0
        for j in np.flatnonzero(chunk_counts).tolist():
            k = int(chunk_counts[j])
            dest = int(at[j])
            grouped[dest : dest + k] = chunk[offset : offset + k]
            if grouped_rows is not None and chunk_rows is not None:
                grouped_rows[dest : dest + k] = chunk_rows[offset : offset + k]
            at[j] = dest + k
            offset += k
    return grouped, grouped_rows, bounds


def sort(keys: np.ndarray, *, bucket_keys: int = BUCKET_KEYS, chunk_keys: int = CHUNK_KEYS,
         sample_keys: int = SAMPLE_KEYS) -> np.ndarray:
    """``keys`` (``uint64``) in ascending order, as ``np.sort(keys)``; ``keys`` is left as it was.
    ``bucket_keys``, ``chunk_keys`` and ``sample_keys`` are the sizes aimed at (below
    ``MIN_BUCKETS`` buckets' worth of keys, a plain numpy sort)."""
    if len(keys) < MIN_BUCKETS * bucket_keys:
        return np.sort(keys)
    grouped, _, bounds = _split(keys, False, bucket_keys, chunk_keys, sample_keys)
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if b - a > 1:
            grouped[a:b].sort()
    return grouped


def stable_argsort(keys: np.ndarray, *, bucket_keys: int = BUCKET_KEYS, chunk_keys: int = CHUNK_KEYS,
                   sample_keys: int = SAMPLE_KEYS) -> np.ndarray:
    """Row numbers of ``keys`` (``uint64``) in ascending order, equal keys in row order, as
    ``np.argsort(keys, kind="stable")`` (``int32`` below 2**31 rows when bucketed); sizes as ``sort``."""
    if len(keys) < MIN_BUCKETS * bucket_keys:
        return np.argsort(keys, kind="stable")
    grouped, rows, bounds = _split(keys, True, bucket_keys, chunk_keys, sample_keys)
    assert rows is not None
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if b - a > 1:
            rows[a:b] = rows[a:b][np.argsort(grouped[a:b], kind="stable")]
    return rows
