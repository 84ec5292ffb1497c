"""Values of a many-chunk column at given rows, without joining its chunks.

A column read from a data file is one chunk per 8,192-row batch. pyarrow's ``ChunkedArray.take``
first concatenates every chunk into one array (pyarrow 26), so taking 2 rows of a 50M-row string
column copied ~650 MB: 0.08 s when that memory was at hand, 3.8 s on the benchmark's VM when it was
not (the first sorted page of 50M rows takes rows three times). Here each chunk holding some of the
rows gives them, and the pieces are put back in the order asked for.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def take(column: pa.ChunkedArray, rows: np.ndarray) -> pa.Array:
    """The values of ``column`` at ``rows`` (row numbers of the whole column, in any order, repeats
    allowed), as one array of ``column``'s type: exactly ``column.take(rows)`` combined.
    ``IndexError`` when a row is out of range."""
    rows = np.asarray(rows, dtype=np.int64)
    n = len(column)
    if len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= n):
        raise IndexError(f"rows out of range for a column of {n} values")
    chunks = [c for c in column.chunks if len(c)]
    if len(chunks) <= 1 or not len(rows):
        whole = chunks[0] if chunks else pa.array([], type=column.type)
        return whole.take(pa.array(rows))
    starts = np.cumsum([0, *map(len, chunks)])
    which = np.searchsorted(starts, rows, side="right") - 1
    by_chunk = np.argsort(which, kind="stable")
    grouped = rows[by_chunk]
    cuts = np.searchsorted(which[by_chunk], np.arange(len(chunks) + 1))
    parts = [chunks[j].take(pa.array(grouped[a:b] - starts[j]))
             for j, (a, b) in enumerate(zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True)) if b > a]
    values = pa.concat_arrays(parts)
    if np.array_equal(by_chunk, np.arange(len(rows))):
        return values  # asked in chunk order already (sorted rows): nothing to put back
    back = np.empty(len(rows), np.int64)
    back[by_chunk] = np.arange(len(rows))
    return values.take(pa.array(back))
