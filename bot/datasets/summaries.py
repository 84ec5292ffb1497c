"""What charts need, computed once when a dataset is registered, so a chart of 10M rows reads a few
thousand numbers instead of 10M values.

For each numeric column: per ``BATCH_ROWS``-row batch its minimum and maximum with the rows holding
them (the points a min/max-downsampled line keeps), its first and last value, and a fine histogram
(``FINE_BINS`` equal bins between the column's minimum and maximum) that any coarser equal-bin
histogram over the same range is a sum of. Missing values (null, NaN, ±inf) are left out. Computed in
a worker thread right after registration and saved as ``summary.npz`` beside the data; a dataset
without one (registered before, or the computation failed) charts from its data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bot.datasets.tablefile import BATCH_ROWS, TableFile

SUMMARY_FILE = "summary.npz"
FINE_BINS = 1000


@dataclass(frozen=True)
class ColumnSummary:
    """Per-batch extremes (``rows`` and values; row -1 and NaN for a batch with no values), first and
    last values, and the fine histogram ``counts`` over ``[lo, hi]`` of one numeric column."""

    argmin: np.ndarray
    argmax: np.ndarray
    min: np.ndarray
    max: np.ndarray
    first: np.ndarray
    last: np.ndarray
    counts: np.ndarray
    lo: float
    hi: float

    def extremes(self) -> np.ndarray:
        """Ascending rows holding each batch's minimum and maximum (a min/max-downsampled line)."""
        rows = np.concatenate([self.argmin, self.argmax])
        return np.unique(rows[rows >= 0])

    def histogram(self, bins: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Counts and edges of ``bins`` equal bins over ``[lo, hi]``, or ``None`` when ``bins`` does not
        divide the fine histogram (the caller reads the data)."""
        if FINE_BINS % bins:
            return None
        counts = self.counts.reshape(bins, FINE_BINS // bins).sum(axis=1)
        lo, hi = (self.lo, self.hi) if self.hi > self.lo else (self.lo - 0.5, self.lo + 0.5)
        return counts, np.linspace(lo, hi, bins + 1)


#: Batches summarised together: 64 x 8,192 rows = 4 MB of float64 per column at a time.
GROUP_BATCHES = 64


def numeric_values(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column as float64 with every missing value NaN."""
    return np.asarray(pc.fill_null(pc.cast(column, pa.float64()), np.nan).to_numpy())


@dataclass
class _Extremes:
    argmin: list[np.ndarray]
    argmax: list[np.ndarray]
    min: list[np.ndarray]
    max: list[np.ndarray]
    first: list[np.ndarray]
    last: list[np.ndarray]


def _group_extremes(values: np.ndarray, offset: int, out: _Extremes) -> None:
    """Per-``BATCH_ROWS`` extremes of ``values`` (rows from ``offset``; whole batches, or the column's
    end), appended to ``out``."""
    n = len(values)
    batches = max(1, -(-n // BATCH_ROWS))
    flat = np.full(batches * BATCH_ROWS, np.nan)
    flat[:n] = values
    flat[~np.isfinite(flat)] = np.nan
    grid = flat.reshape(batches, BATCH_ROWS)
    missing = np.isnan(grid)
    empty = missing.all(axis=1)
    rows = np.arange(batches)
    base = offset + rows * BATCH_ROWS
    lo_at = np.where(missing, np.inf, grid).argmin(axis=1)
    hi_at = np.where(missing, -np.inf, grid).argmax(axis=1)
    out.argmin.append(np.where(empty, -1, base + lo_at))
    out.argmax.append(np.where(empty, -1, base + hi_at))
    out.min.append(np.where(empty, np.nan, grid[rows, lo_at]))
    out.max.append(np.where(empty, np.nan, grid[rows, hi_at]))
    out.first.append(grid[:, 0].copy())
    out.last.append(grid[rows, np.maximum(0, np.minimum(BATCH_ROWS, n - rows * BATCH_ROWS) - 1)])


def summarise_chunks(chunks: Callable[[], Iterable[np.ndarray]]) -> ColumnSummary:
    """The summary of one column given as consecutive chunks of float64 values (NaN for missing), each
    a whole number of batches but the last. ``chunks`` is called twice (the extremes, then the
    histogram between them), so one chunk at a time is in memory."""
    ext = _Extremes([], [], [], [], [], [])
    offset = 0
    for values in chunks():
        _group_extremes(values, offset, ext)
        offset += len(values)
    if offset == 0:
        _group_extremes(np.zeros(0), 0, ext)
    mins, maxs = np.concatenate(ext.min), np.concatenate(ext.max)
    known = ~np.isnan(mins)
    lo = float(mins[known].min()) if known.any() else 0.0
    hi = float(maxs[known].max()) if known.any() else 0.0
    lo_edge, width = (lo, hi - lo) if hi > lo else (lo - 0.5, 1.0)  # one value: a bin around it
    counts = np.zeros(FINE_BINS, dtype=np.int64)
    if known.any():
        for values in chunks():
            finite = values[np.isfinite(values)]
            slots = np.minimum(((finite - lo_edge) * (FINE_BINS / width)).astype(np.int64), FINE_BINS - 1)
            counts += np.bincount(slots, minlength=FINE_BINS)
    return ColumnSummary(
        argmin=np.concatenate(ext.argmin), argmax=np.concatenate(ext.argmax), min=mins, max=maxs,
        first=np.concatenate(ext.first), last=np.concatenate(ext.last), counts=counts, lo=lo, hi=hi,
    )


def summarise(values: np.ndarray) -> ColumnSummary:
    """The summary of one column's values (float64, NaN for missing) held in memory."""
    step = GROUP_BATCHES * BATCH_ROWS
    return summarise_chunks(lambda: (values[i : i + step] for i in range(0, len(values), step)))


def groups_of(table: TableFile, name: str) -> Iterator[pa.ChunkedArray]:
    """Column ``name`` of a data file, ``GROUP_BATCHES`` batches at a time (a 10M-row column is never
    in memory whole)."""
    for first in range(0, table.num_batches, GROUP_BATCHES):
        yield table.column_batches(name, first, min(first + GROUP_BATCHES, table.num_batches))


def summarise_file(table: TableFile, numeric: list[str]) -> dict[str, ColumnSummary]:
    """Summaries of the ``numeric`` columns of a data file, read a group of batches at a time."""
    found = {}
    for name in numeric:

        def chunks(name: str = name) -> Iterator[np.ndarray]:
            return (numeric_values(group) for group in groups_of(table, name))

        found[name] = summarise_chunks(chunks)
    return found


def save(folder: Path, summaries: dict[str, ColumnSummary]) -> Path:
    path = folder / SUMMARY_FILE
    tmp = folder / (SUMMARY_FILE + ".part")
    arrays: dict[str, np.ndarray] = {}
    for i, (name, s) in enumerate(summaries.items()):
        arrays[f"{i}.name"] = np.array(name)
        for field in ("argmin", "argmax", "min", "max", "first", "last", "counts"):
            arrays[f"{i}.{field}"] = getattr(s, field)
        arrays[f"{i}.range"] = np.array([s.lo, s.hi])
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy's stub confuses **kwds with allow_pickle
    tmp.replace(path)  # complete or absent: a reader never sees half a file
    return path


def load(folder: Path) -> dict[str, ColumnSummary]:
    """The saved summaries (empty when there are none)."""
    try:
        with np.load(folder / SUMMARY_FILE, allow_pickle=False) as data:
            count = sum(1 for key in data.files if key.endswith(".name"))
            out = {}
            for i in range(count):
                lo, hi = data[f"{i}.range"]
                field = {f: data[f"{i}.{f}"] for f in ("argmin", "argmax", "min", "max", "first", "last", "counts")}
                out[str(data[f"{i}.name"])] = ColumnSummary(
                    argmin=field["argmin"], argmax=field["argmax"], min=field["min"], max=field["max"],
                    first=field["first"], last=field["last"], counts=field["counts"], lo=float(lo), hi=float(hi),
                )
            return out
    except (FileNotFoundError, ValueError, KeyError):
        return {}
