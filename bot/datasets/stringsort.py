"""A stable ascending order for string columns, about 2.5× faster than Arrow's comparison sort.

Arrow's ``array_sort_indices`` compares whole strings (about 5 s for 10M short strings on 2 cores).
Most of that work can be done on integers: skip the prefix every value shares (the common prefix of
the minimum and maximum), pack the next 8 bytes of each value big-endian into a ``uint64``
(zero-padded), and argsort those with numpy. Only runs of equal keys that can still be out of order
(a member longer than the 8-byte window, or members of different lengths) are re-sorted with Arrow.
Byte order equals Arrow's order (unsigned memcmp on UTF-8) and ties keep row order, so the result
is identical to ``pc.array_sort_indices(column, null_placement="at_end")``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bot.datasets import bucketsort

WINDOW = 8  # bytes packed into one uint64 key


def _common_prefix(arr: pa.ChunkedArray) -> int:
    bounds = pc.min_max(arr)
    lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
    if lo is None or hi is None:
        return 0
    a, b = lo.encode(), hi.encode()
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


#: Rows per step of the key building: its temporaries stay in cache instead of being 400 MB arrays
#: at 50M rows, whose first touch costs more than the work.
STEP = 1 << 20


def _chunk_keys(arr: pa.Array, skip: int, out: np.ndarray, lengths_out: np.ndarray) -> None:
    """Bytes ``[skip, skip + 8)`` of each value of ``arr`` as a big-endian ``uint64`` (zero-padded)
    into ``out``, and byte lengths into ``lengths_out``."""
    off_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], dtype=off_type, count=n + 1,
                            offset=arr.offset * np.dtype(off_type).itemsize)
    data_buffer = arr.buffers()[2]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    lengths_out[:] = lengths
    if n and lengths.min() == lengths.max():
        # Equal lengths (ids like C0001234): each key is one unaligned big-endian 8-byte read at a fixed
        # stride, no gather. A value shorter than the window reads into the next one's bytes, which
        # the mask clears (zero padding); the last rows, whose read would pass the data's end, are
        # copied byte by byte.
        width = int(lengths[0])
        first = int(offsets[0]) + skip
        whole = max(0, min(n, (len(data) - first - WINDOW) // width + 1)) if width else 0
        if whole:
            out[:whole] = np.ndarray((whole,), dtype=">u8", buffer=data, offset=first, strides=(width,))
            kept = max(0, min(WINDOW, width - skip))
            if kept < WINDOW:
                out[:whole] &= ~np.uint64((1 << (8 * (WINDOW - kept))) - 1)
        for s in range(whole, n, STEP):
            rows = min(STEP, n - s)
            start = int(offsets[0]) + s * width
            grid = data[start : start + rows * width].reshape(rows, width)[:, skip : skip + WINDOW]
            packed = np.zeros((rows, WINDOW), np.uint8)
            packed[:, : grid.shape[1]] = grid
            out[s : s + rows] = packed.view(">u8").ravel()
        return
    out[:] = 0
    for j in range(WINDOW):
        present = lengths > skip + j
        byte = np.zeros(n, np.uint64)
        byte[present] = data[starts[present] + skip + j]
        out |= byte << np.uint64(8 * (WINDOW - 1 - j))


def _keys(column: pa.ChunkedArray, skip: int) -> tuple[np.ndarray, np.ndarray]:
    """Bytes ``[skip, skip + 8)`` of each value as a big-endian ``uint64`` (zero-padded), and byte
    lengths, built chunk by chunk into one array each (the column is never concatenated)."""
    n = len(column)
    key = np.empty(n, np.uint64)
    # Byte lengths in the offsets' own width: int32 for string, half the memory of int64 (at 50M rows
    # the first touch of another 200 MB is ~0.3-0.6 s).
    lengths = np.empty(n, np.int64 if pa.types.is_large_string(column.type) else np.int32)
    at = 0
    for chunk in column.chunks:
        if not len(chunk):
            continue  # an empty chunk may have no buffers at all
        _chunk_keys(chunk, skip, key[at : at + len(chunk)], lengths[at : at + len(chunk)])
        at += len(chunk)
    return key, lengths


def string_order(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Row numbers of a string column in stable ascending order, nulls last."""
    chunked = column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column], type=column.type)
    rows = nulls = None
    if chunked.null_count:
        valid = pc.is_valid(chunked).to_numpy(zero_copy_only=False)
        rows, nulls = np.flatnonzero(valid), np.flatnonzero(~valid)
        chunked = chunked.filter(pa.array(valid))
    skip = _common_prefix(chunked) if len(chunked) else 0
    key, lengths = _keys(chunked, skip)
    order = bucketsort.stable_argsort(key)  # linear in rows, unlike np.argsort: see bucketsort
    limit = skip + WINDOW
    if len(order) > 1 and (lengths.max() > limit or lengths.min() != lengths.max()):
        sorted_keys, sorted_lengths = key[order], lengths[order]
        first = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        size = np.diff(np.r_[first, len(sorted_keys)])
        longest = np.maximum.reduceat(sorted_lengths, first)
        uneven = longest != np.minimum.reduceat(sorted_lengths, first)
        unresolved = (size > 1) & ((longest > limit) | uneven)
        if unresolved.any():
            mask = np.repeat(unresolved, size)
            sub = order[mask]
            order[mask] = sub[pc.array_sort_indices(chunked.take(pa.array(sub))).to_numpy()]
    if rows is not None and nulls is not None:
        order = np.concatenate([rows[order], nulls])
    return order
