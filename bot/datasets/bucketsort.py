"""Sorting of large ``uint64`` key arrays in time proportional to their length.

numpy's sorts cost more per key the larger the array (a 64K-key sort runs in L2, a 10M-key sort
streams memory at every level of its recursion): measured on the 2-core benchmark machine, ~37 ns a
key at 64K keys, ~60 ns at 1M, 65-93 ns at 10M and more at 50M, so a 50M-key sort took ~6x a 10M one.
Here the keys are first split by their leading bits into buckets of ~32K keys (bucket boundaries
drawn from a histogram of a sample, so skewed keys still give even buckets), then each bucket is
sorted on its own, in cache. The split reads the keys in 1M-key chunks: each chunk is grouped by
bucket with numpy's radix sort of its 16-bit bucket numbers and copied out slice by slice, so all
memory access is sequential. The cost per key no longer grows with the array: 10M random keys in
0.50 s, 50M in 2.49 s on one core (5.0x; ``np.sort`` 0.64 s and 3.67 s).

The chunks of the split, and then the buckets, are shared among ``THREADS`` threads (numpy lets go of
the GIL for the arrays' work): on 2 cores the bucket sorts of 50M random keys take 0.80 s instead of
1.57 s. Keys may also be made on demand (``Keys``) instead of read from an array, when keeping them
would cost more in new memory than making them twice.

Keys whose leading bits barely differ (digit ids: ~75 distinct 16-bit prefixes in 25M of them) fill
few buckets, each too large for the cache: such a bucket is bucketed again by its own range, which
tells its keys apart. For the stable order each bucket packs its keys (less its minimum) and its row
numbers into one ``uint64`` when they fit, so numpy's fast unstable sort gives a stable order.

The result is exactly ``np.sort(keys)`` / ``np.argsort(keys, kind="stable")``: buckets are ordered
ranges of keys, and keys keep their row order within a bucket until the (stable) bucket sort.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

#: Keys per bucket aimed at: sorted in L2 (256 KB of keys, half of it, so buckets larger than aimed at
#: still fit), where numpy's sort is fastest per key. 64K-key buckets made a 50M sort 5.3x a 10M one.
BUCKET_KEYS = 1 << 15
#: Keys grouped by bucket at a time (8 MB: in the last-level cache).
CHUNK_KEYS = 1 << 20
#: Below this many buckets' worth of keys (2M keys) a plain numpy sort is as fast.
MIN_BUCKETS = 64
#: Keys sampled for the histogram that places bucket boundaries (~690 a bucket at 50M keys: sizes
#: within a few percent of the aim).
SAMPLE_KEYS = 1 << 20
#: A bucket over this many times ``BUCKET_KEYS`` is bucketed again (digit ids, for one, share their
#: leading bits: ~75 distinct 16-bit prefixes in 25M ids, buckets of ~670K keys).
OVERSIZED = 4
_PREFIX_BITS = 16


@dataclass(frozen=True)
class Keys:
    """Keys made on demand rather than held in an array: a sort of ``n`` of them reads them chunk by
    chunk, twice, instead of from an array of ``n`` (at 50M keys, 400 MB of new memory).

    ``fill`` is called from the sort's threads at once, each with its own ``out``.
    ``lo`` and ``hi`` bound the keys (``lo <= key <= hi``; the tighter, the more evenly the keys
    spread over the buckets' prefixes); ``fill(start, out)`` writes keys
    ``start:start + len(out)`` into ``out``; ``sample`` is every ``n // SAMPLE_KEYS``-th key (at
    least every one), as ``keys[::step]`` of the array would be."""

    n: int
    lo: int
    hi: int
    fill: Callable[[int, np.ndarray], None]
    sample: Callable[[int], np.ndarray]

    def chunk(self, start: int, out: np.ndarray) -> np.ndarray:
        self.fill(start, out)
        return out

    def array(self) -> np.ndarray:
        keys = np.empty(self.n, np.uint64)
        for s in range(0, self.n, CHUNK_KEYS):
            self.fill(s, keys[s : s + CHUNK_KEYS])
        return keys


def _sample_step(n: int) -> int:
    return max(1, n // SAMPLE_KEYS)


class _Buckets:
    """Which bucket each key falls in: a table from the top 16 bits of the key (its range stretched
    to fill 64 bits) to a bucket number, nondecreasing, with boundaries placed so a sample of the
    keys fills the buckets evenly."""

    def __init__(self, keys: np.ndarray | Keys) -> None:
        if isinstance(keys, Keys):
            n, lo, hi, sample = keys.n, keys.lo, keys.hi, keys.sample(_sample_step(keys.n))
        else:
            n, lo, hi, sample = len(keys), int(keys.min()), int(keys.max()), keys[:: _sample_step(len(keys))]
        self.base = np.uint64(lo)
        # Stretched so the keys' range fills 64 bits: the prefix then tells apart as many keys as it can.
        self.lift = np.uint64(64 - (hi - lo).bit_length()) if hi > lo else np.uint64(0)
        self.drop = np.uint64(64 - _PREFIX_BITS)
        hist = np.bincount(self.prefix(sample, np.empty(len(sample), np.uint64)), minlength=1 << _PREFIX_BITS)
        self.count = int(min(max(1, n // BUCKET_KEYS), 1 << 15))
        before = np.cumsum(hist) - hist
        # Prefixes past the last sampled one go to the last bucket; the table never decreases, so
        # buckets stay ordered ranges of keys.
        self.table = np.minimum(before * self.count // max(1, len(sample)), self.count - 1).astype(np.uint16)

    def prefix(self, keys: np.ndarray, scratch: np.ndarray) -> np.ndarray:
        """The 16-bit prefix of each of ``keys``, computed in ``scratch`` (``uint64``, as long) and
        returned as a signed view of it (an index)."""
        np.subtract(keys, self.base, out=scratch)
        scratch <<= self.lift
        scratch >>= self.drop
        return scratch.view(np.int64)

    def counts(self, keys: np.ndarray, scratch: np.ndarray) -> np.ndarray:
        """How many of ``keys`` fall in each bucket: counted by prefix, then summed by bucket."""
        by_prefix = np.bincount(self.prefix(keys, scratch), minlength=1 << _PREFIX_BITS)
        return np.bincount(self.table, weights=by_prefix, minlength=self.count).astype(np.int64)

    def of(self, keys: np.ndarray, scratch: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The bucket number of each of ``keys``, into ``out`` (``uint16``, as long)."""
        return np.take(self.table, self.prefix(keys, scratch), out=out)


class _Splitter:
    """Splits of one sort: its first split and those of the buckets it splits again, sharing buffers.

    Per-chunk work goes through buffers made once, in cache, and each depth of re-splitting writes into
    one buffer kept for that depth: as new arrays, a 50M-key sort re-splitting 75 buckets made ~1.5 GB
    of short-lived ones (~580K page faults, 1.2 s of system time on the benchmark's VM).

    One splitter is one thread's: the first split and the buckets of a large sort are shared among
    ``lanes``, each another thread's splitter (see ``share``)."""

    def __init__(self, n: int) -> None:
        self.step = min(n, CHUNK_KEYS)
        self.row_type = np.int32 if n < 2**31 else np.int64
        self.scratch = np.empty(self.step, np.uint64)
        self.numbers = np.empty(self.step, np.uint16)
        self.moved = np.empty(self.step, np.uint64)
        self.moved_rows = np.empty(self.step, self.row_type)
        self.made = np.empty(self.step, np.uint64)  # a chunk of keys made on demand (``Keys``)
        self._depths: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self.lanes: list[_Splitter] = [self]

    def _output(self, depth: int, n: int, rows: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Arrays for a split's result: new ones at depth 0 (the sort's result), else the depth's own."""
        if depth == 0:
            return np.empty(n, np.uint64), np.empty(n, self.row_type) if rows else None
        kept = self._depths.get(depth)
        if kept is None or len(kept[0]) < n or (rows and kept[1] is None):
            kept = np.empty(n, np.uint64), np.empty(n, self.row_type) if rows else None
            self._depths[depth] = kept
        return kept[0][:n], None if kept[1] is None else kept[1][:n]

    def _lanes(self, depth: int) -> list[_Splitter]:
        """Lanes sharing a split at ``depth``: all of them for the first split; a re-split is one lane's
        own (the other lanes are busy with their buckets, in their buffers)."""
        return self.lanes if depth == 0 else [self]

    def _chunk(self, keys: np.ndarray | Keys, s: int, m: int) -> np.ndarray:
        """Keys ``s:s + m``: a view of an array, or made into a buffer of this splitter."""
        return keys.chunk(s, self.made[:m]) if isinstance(keys, Keys) else keys[s : s + m]

    def split(self, keys: np.ndarray | Keys, rows: bool,
              depth: int = 0) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """``keys`` grouped by bucket, keeping their order within each (and their row numbers when
        ``rows``), and where each bucket starts (plus the end). Bucket numbers are computed twice per
        chunk (to count, then to move) rather than kept: a full array of them would be one more
        large allocation. Chunks are shared among the lanes: each chunk's keys of a bucket go after
        those of the chunks before it, wherever the lanes are."""
        n, step = (keys.n if isinstance(keys, Keys) else len(keys)), self.step
        buckets = _Buckets(keys)
        starts = list(range(0, n, step))
        counts = np.zeros((len(starts), buckets.count), np.int64)

        grouped, grouped_rows = self._output(depth, n, rows)

        def count(lane: _Splitter, chunks: range) -> None:
            for i in chunks:
                m = min(step, n - starts[i])
                counts[i] = buckets.counts(lane._chunk(keys, starts[i], m), lane.scratch[:m])
                if depth == 0:
                    # The result's pages are first touched here, each lane its own share, rather than
                    # by the scattered writes below: the page faults of new memory (most of a large
                    # sort's system time) then come in sequence and on every core.
                    grouped[starts[i] : starts[i] + m] = 0
                    if grouped_rows is not None:
                        grouped_rows[starts[i] : starts[i] + m] = 0

        share(self._lanes(depth), len(starts), [1] * len(starts), count)
        bounds = np.zeros(buckets.count + 1, np.int64)
        np.cumsum(counts.sum(axis=0), out=bounds[1:])
        # Where chunk i's keys of each bucket start: the bucket's start plus the earlier chunks' keys of it.
        at = bounds[:-1] + np.cumsum(counts, axis=0) - counts

        def move(lane: _Splitter, chunks: range) -> None:
            for i in chunks:
                s, m = starts[i], min(step, n - starts[i])
                keys_here = lane._chunk(keys, s, m)
                numbers = buckets.of(keys_here, lane.scratch[:m], lane.numbers[:m])
                order = np.argsort(numbers, kind="stable")  # radix sort: linear
                chunk = np.take(keys_here, order, out=lane.moved[:m])
                chunk_rows = np.add(order, s, out=lane.moved_rows[:m], casting="unsafe") if rows else None
                offset = 0
                for j in np.flatnonzero(counts[i]).tolist():
                    k = int(counts[i, j])
                    dest = int(at[i, j])
                    grouped[dest : dest + k] = chunk[offset : offset + k]
                    if grouped_rows is not None and chunk_rows is not None:
                        grouped_rows[dest : dest + k] = chunk_rows[offset : offset + k]
                    offset += k

        share(self._lanes(depth), len(starts), [1] * len(starts), move)
        return grouped, grouped_rows, bounds

    def sorted(self, keys: np.ndarray | Keys, depth: int = 0) -> np.ndarray:
        """``keys`` sorted, bucketed: buckets that came out too large to sort in cache (keys whose
        leading bits barely differ) are bucketed again, each by its own range, while that splits them.
        Buckets are shared among the lanes, each sorting its own range of them."""
        grouped, _, bounds = self.split(keys, False, depth)
        edges = bounds.tolist()

        def sort_buckets(lane: _Splitter, buckets: range) -> None:
            for i in buckets:
                a, b = edges[i], edges[i + 1]
                if _oversized(grouped, a, b, len(grouped)):
                    grouped[a:b] = lane.sorted(grouped[a:b], depth + 1)
                elif b - a > 1:
                    grouped[a:b].sort()

        share(self._lanes(depth), len(edges) - 1, np.diff(bounds).tolist(), sort_buckets)
        return grouped

    def ordered(self, keys: np.ndarray, depth: int = 0) -> np.ndarray:
        """Row numbers of ``keys`` in stable order, bucketed; oversized buckets bucketed again as in
        ``sorted``, buckets shared among the lanes likewise."""
        grouped, rows, bounds = self.split(keys, True, depth)
        assert rows is not None
        edges = bounds.tolist()

        def order_buckets(lane: _Splitter, buckets: range) -> None:
            for i in buckets:
                a, b = edges[i], edges[i + 1]
                if _oversized(grouped, a, b, len(keys)):
                    rows[a:b] = rows[a:b][lane.ordered(grouped[a:b], depth + 1)]
                elif b - a > 1:
                    order = _bucket_order(grouped[a:b])
                    if order is not None:
                        rows[a:b] = rows[a:b][order]

        share(self._lanes(depth), len(edges) - 1, np.diff(bounds).tolist(), order_buckets)
        return rows


Lane = TypeVar("Lane")


def share(lanes: Sequence[Lane], count: int, sizes: Sequence[int], work: Callable[[Lane, range], None]) -> None:
    """Run ``work`` over items ``0:count`` (of ``sizes``), split into one contiguous range per lane of
    about equal total size: the first in this thread, the others in the sort threads (``THREADS``
    lanes keep every core busy). numpy lets go of the GIL for the arrays' work, so the lanes run side
    by side; ``work`` must touch only its own range and its lane's buffers."""
    if len(lanes) == 1 or count < 2:
        work(lanes[0], range(count))
        return
    total = np.cumsum(sizes)
    cuts = [0, *np.searchsorted(total, [total[-1] * k / len(lanes) for k in range(1, len(lanes))]).tolist(), count]
    ranges = [range(a, b) for a, b in itertools.pairwise(cuts) if b > a]
    others = [_threads().submit(work, lane, r) for lane, r in zip(lanes[1:], ranges[1:], strict=False)]
    try:
        work(lanes[0], ranges[0])
    finally:
        for done in others:
            done.result()


#: Threads one large sort uses: the cores this process may run on, at most 4 (the split and the
#: bucket sorts run side by side; past a few threads memory bandwidth is the limit).
THREADS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _threads() -> ThreadPoolExecutor:
    """The sort threads (``THREADS - 1`` of them: each sort also works in its own thread), made once."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, THREADS - 1), thread_name_prefix="bucketsort")
        return _pool


def _splitter(n: int) -> _Splitter:
    """A splitter for a large sort, with a lane per sort thread."""
    splitter = _Splitter(n)
    splitter.lanes += [_Splitter(n) for _ in range(THREADS - 1)]
    return splitter


def _oversized(grouped: np.ndarray, a: int, b: int, parent: int) -> bool:
    """Whether bucket ``a:b`` of ``grouped`` is to be split again: too large to sort in cache, smaller
    than the array it came from (so splitting ends), and not all one key."""
    return b - a > OVERSIZED * BUCKET_KEYS and b - a < parent and bool(grouped[a] != grouped[b - 1])


def _bucket_order(keys: np.ndarray) -> np.ndarray | None:
    """The stable order of one bucket's keys; ``None`` when they are all equal (row order stands).

    When the bucket's range and its row numbers fit in 64 bits together, both are packed into one
    number and sorted with numpy's fast unstable sort (distinct numbers: stable by construction),
    ~40 ns a key against ~70 for a stable argsort of 64K keys."""
    lo, hi = int(keys.min()), int(keys.max())
    if lo == hi:
        return None
    row_bits = (len(keys) - 1).bit_length()
    if (hi - lo).bit_length() + row_bits > 64:
        return np.argsort(keys, kind="stable")
    packed = (keys - np.uint64(lo)) << np.uint64(row_bits)
    packed |= np.arange(len(keys), dtype=np.uint64)
    packed.sort()
    packed &= np.uint64((1 << row_bits) - 1)
    return packed


def rows_of(packed: np.ndarray, row_bits: int, step: int = CHUNK_KEYS) -> np.ndarray:
    """The row numbers in the low ``row_bits`` of sorted ``packed`` numbers (fewer than 2**31 of them),
    as ``int32`` written over the numbers' own buffer (a view of its first half): no new array. Row
    ``i`` lands in bytes already read (numpy copies the overlapping first step)."""
    n = len(packed)
    mask = np.uint64((1 << row_bits) - 1)
    rows = packed.view(np.int32)[:n]
    for s in range(0, n, step):
        np.bitwise_and(packed[s : s + step], mask, out=rows[s : s + step], casting="unsafe")
    return rows


def sort(keys: np.ndarray | Keys) -> np.ndarray:
    """``keys`` (``uint64``, or made on demand) in ascending order, as ``np.sort(keys)``; an array of
    keys is left as it was. Below ``MIN_BUCKETS`` buckets' worth of keys, a plain numpy sort (of keys
    made on demand: made into an array first)."""
    n = keys.n if isinstance(keys, Keys) else len(keys)
    if n < MIN_BUCKETS * BUCKET_KEYS:
        return np.sort(keys.array() if isinstance(keys, Keys) else keys)
    return _splitter(n).sorted(keys)


def stable_argsort(keys: np.ndarray) -> np.ndarray:
    """Row numbers of ``keys`` (``uint64``) in ascending order, equal keys in row order, as
    ``np.argsort(keys, kind="stable")`` (``int32`` below 2**31 rows when bucketed; below
    ``MIN_BUCKETS`` buckets' worth of keys, numpy's)."""
    if len(keys) < MIN_BUCKETS * BUCKET_KEYS:
        return np.argsort(keys, kind="stable")
    return _splitter(len(keys)).ordered(keys)
