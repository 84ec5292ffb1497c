"""Stable orders of numbers by sorting them packed with their row numbers.

numpy's stable argsort of 10M floats costs several times a plain sort of 10M ``uint64``. Each value is
turned into bits that sort as it does (``order_bits``), less the smallest, stretched so the largest
uses the top bit, and its row number goes into the low bits: a plain sort of those numbers
(``bucketsort.sort``: linear in rows) is then a stable order, since no two are equal. When the values'
range and the row numbers do not fit in 64 bits together, low bits of the values are dropped, and
rows whose kept bits tie are put right after by their full bits.

Numeric columns are sorted this way (``tablefile``), and so are string columns whose values are all
digits of one width (``stringsort``), as the numbers they spell.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from bot.datasets import bucketsort

#: Above this share of rows tied with a neighbour, a stable sort beats quicksort plus fixing ties.
TIE_SHARE = 0.05


#: Rows whose sort numbers are made at once (the sort makes them twice rather than keep 8 bytes a row):
#: their temporaries stay in L2.
PACK_ROWS = 1 << 16
#: Rows per step of the key building below: its temporaries stay in cache, and no step allocates a
#: full-length array beyond its result (each new 400 MB array costs 0.25-1.2 s of first-touch page
#: faults at 50M rows on the benchmark machine, more than the arithmetic).
STEP = 1 << 20


def order_bits(values: np.ndarray) -> np.ndarray:
    """New ``uint64`` numbers in the order of ``values`` (numbers of one dtype, no NaN): equal values,
    -0.0 and 0.0 included, get equal numbers."""
    if values.dtype.kind == "f":
        floats = values.astype(np.float64)  # a copy: float32 widens exactly
        floats += 0.0  # -0.0 becomes 0.0, which compares equal to it
        bits = floats.view(np.uint64)
        flip = np.uint64(0) - (bits >> np.uint64(63))  # all ones for negatives: their bits reverse
        flip |= np.uint64(1 << 63)
        flip ^= bits
        return flip
    if values.dtype.kind == "i":
        return values.astype(np.int64).view(np.uint64) ^ np.uint64(1 << 63)
    return values.astype(np.uint64)


def _steps(parts: Sequence[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
    """``parts`` in pieces of at most ``STEP`` values, each with its position in the whole."""
    at = 0
    for part in parts:
        for s in range(0, len(part), STEP):
            yield at + s, part[s : s + STEP]
        at += len(part)


def _values_at(parts: Sequence[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """The values at ``rows`` (row numbers into ``parts`` laid end to end), without joining ``parts``."""
    by_row = np.argsort(rows, kind="stable")
    ordered = rows[by_row]
    starts = np.cumsum([0, *map(len, parts)])
    cuts = np.searchsorted(ordered, starts)  # where each part's rows begin among the ordered ones
    out = np.empty(len(rows), parts[0].dtype)
    for j in np.flatnonzero(np.diff(cuts)).tolist():
        a, b = int(cuts[j]), int(cuts[j + 1])
        out[by_row[a:b]] = parts[j][ordered[a:b] - starts[j]]
    return out


def _rows_into(parts: Sequence[np.ndarray], starts: np.ndarray, start: int, out: np.ndarray) -> np.ndarray:
    """Rows ``start:start + len(out)`` of ``parts`` laid end to end (``starts``: where each part
    begins, and the end) copied into ``out``, which is returned."""
    j = int(np.searchsorted(starts, start, side="right")) - 1
    done = 0
    while done < len(out):
        a = start + done - int(starts[j])
        k = min(len(out) - done, len(parts[j]) - a)
        out[done : done + k] = parts[j][a : a + k]
        done += k
        j += 1
    return out


def _bounds(parts: Sequence[np.ndarray]) -> tuple[int, int]:
    """The smallest and largest ``order_bits`` of the values, in one pass whose temporaries stay in cache."""
    lo, hi = 2**64, -1
    for _, part in _steps(parts):
        bits = order_bits(part)
        lo, hi = min(lo, int(bits.min())), max(hi, int(bits.max()))
    return lo, hi


def packed_order(parts: Sequence[np.ndarray], bounds: tuple[int, int] | None = None) -> np.ndarray | None:
    """Stable ascending order of the values in ``parts`` (no missing ones) by sorting plain ``uint64`` numbers,
    about twice as fast as numpy's argsort: each holds the leading bits of the value's order bits
    (less the smallest, stretched so the largest uses the top bit: the leading bits say the most)
    and, in the low bits, its row number, so a sort of them is stable by construction (and they are
    all distinct, which ``bucketsort.sort`` needs no more than ``np.sort`` does). When the values'
    range and the row numbers do not fit in 64 bits together, low bits of the values are dropped:
    rows whose leading bits tie (equal values, or values differing only in the dropped bits) are
    then ordered by their full order bits and row. ``None`` when such ties are too many for that to
    pay. ``parts`` are the values in pieces, as a column's chunks: read in place, never
    concatenated; ``bounds``, when the caller knows them, the smallest and largest of their
    ``order_bits`` (which saves a pass over the values).

    One full-length array is made: the sorted numbers, made chunk by chunk as the sort reads them
    (``bucketsort.Keys``) rather than kept in an array of their own; the result is written into it
    (``int32``: a view of half its buffer). At 50M rows each new 400 MB array costs 0.2-2 s of
    first-touch page faults on the benchmark's VM, more than making the numbers once more."""
    n = sum(len(p) for p in parts)
    lo, hi = bounds if bounds is not None else _bounds(parts)
    lift = np.uint64(64 - (hi - lo).bit_length())  # 64 when all are equal: the shift below is then skipped
    row_bits = (n - 1).bit_length()
    rows_mask = np.uint64((1 << row_bits) - 1)
    starts = np.cumsum([0, *map(len, parts)])

    def pack(values: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
        bits = order_bits(values)
        bits -= np.uint64(lo)
        if hi > lo:
            bits <<= lift
        bits &= ~rows_mask
        np.bitwise_or(bits, rows, out=out, casting="unsafe")

    def fill(start: int, out: np.ndarray) -> None:
        """The numbers of rows ``start:start + len(out)``, made ``PACK_ROWS`` at a time from values
        copied out of the parts (8,192-row chunks of a data file: a few numpy calls per part, for
        every part, cost more than the copy). The sort's threads call it at once: nothing is shared."""
        gathered = np.empty(min(len(out), PACK_ROWS), parts[0].dtype)
        for s in range(0, len(out), PACK_ROWS):
            values = _rows_into(parts, starts, start + s, gathered[: min(PACK_ROWS, len(out) - s)])
            pack(values, np.arange(start + s, start + s + len(values), dtype=np.uint64), out[s : s + len(values)])

    def sample(step: int) -> np.ndarray:
        rows = np.arange(0, n, step, dtype=np.int64)
        out = np.empty(len(rows), np.uint64)
        pack(_values_at(parts, rows), rows.astype(np.uint64), out)
        return out

    # Bounds of the numbers: the smallest value's leading bits are 0, the largest's fill the top bit.
    packed = bucketsort.Keys(n, lo=0, hi=2**64 - 1 if hi > lo else int(rows_mask), fill=fill, sample=sample)
    grouped = bucketsort.sort(packed)  # linear in n: see bucketsort
    if (hi - lo).bit_length() + row_bits <= 64:
        # No bit of any value was dropped (integers of a moderate range): numbers that tie are equal
        # values, already in row order. Nothing to fix, however many ties.
        return bucketsort.rows_of(grouped, row_bits, STEP)
    # Positions whose leading bits equal the next one's, found step by step (no full-length mask),
    # before the rows are written over the numbers.
    tied: list[np.ndarray] = []
    ties = 0
    for s in range(0, n - 1, STEP):
        e = min(s + STEP, n - 1)
        leading = grouped[s : e + 1] >> np.uint64(row_bits)
        tied.append(np.flatnonzero(leading[1:] == leading[:-1]) + s)
        ties += len(tied[-1])
        if ties > TIE_SHARE * n:
            return None
    perm = bucketsort.rows_of(grouped, row_bits, STEP)
    if ties:
        # Groups of equal leading bits are contiguous and in order; within them, the full order bits
        # decide and then the row, so one lexsort of just their members restores the exact stable order.
        first = np.concatenate(tied)
        at = np.union1d(first, first + 1)
        members = perm[at]
        perm[at] = members[np.lexsort((members, order_bits(_values_at(parts, members))))]
    return perm


