"""Charts of dataset columns as PNGs, fast on 10M rows and faithful to the data.

- line: y (numeric) against x (numeric, time, or anything else by row order with x labels as ticks);
  with no y, a numeric x is drawn against row number. Long series are MinMax-downsampled: the row
  range is cut into ``LINE_POINTS / 2`` buckets and each keeps its minimum and maximum, in row order,
  so every peak and trough survives at the ~800 px the chart is drawn at; the result is drawn as the
  filled band between neighbouring points (what their zigzag covers, 4x cheaper to draw).
- scatter: up to ``SCATTER_POINTS`` rows sampled uniformly (fixed seed) plus the rows holding the
  extremes of x and y, so the axes span the real data.
- bar: sum of y per x value (row count when there is no y); numbers and dates in x order when
  there are few of them, otherwise the ``BAR_CATEGORIES`` largest.
- hist: 50 equal bins of a numeric or time column (numpy histogram, no per-point drawing).
- box: quartiles of a numeric x, or of y per x value (the ``BOX_GROUPS`` most frequent); whiskers
  at 1.5 IQR clipped to the data range; outliers are not drawn.

Lines and histograms of numeric columns read the dataset's summaries (``bot.datasets.summaries``:
per-batch extremes and a fine histogram computed at registration) instead of the column; they read
data only when the summary cannot answer (short data, a histogram of another bin count, time columns).

Drawing uses the object-oriented API (``Figure`` + Agg canvas, never pyplot) under one lock, because
matplotlib's global state (font cache, rcParams) is not thread-safe. ``warm_up`` (called by ``serve``
at start-up) imports matplotlib and draws a first figure in a background thread (1-3 s), so the
first chart a user asks for does not pay it. Margins are fixed rather than computed by constrained
layout (100+ ms a chart).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bot.datasets import gather
from bot.datasets.formatting import format_cell, truncate
from bot.datasets.model import ChartSpec, Column, DatasetError, DatasetMeta
from bot.datasets.summaries import ColumnSummary

if TYPE_CHECKING:
    from bot.datasets.tablefile import TableFile

LINE_POINTS = 2000
SCATTER_POINTS = 50_000
BAR_CATEGORIES = 30
BOX_GROUPS = 12
HIST_BINS = 50
FIGSIZE = (8.0, 5.0)  # 800 x 500 px at DPI: readable as a Slack / Teams preview
DPI = 100

_lock = threading.Lock()
_matplotlib_ready = False
_warming: threading.Thread | None = None


def warm_up() -> None:
    """Import matplotlib and draw a throwaway figure in a background thread (once per process), so the
    first real chart starts warm. Returns at once; ``render`` waits for it if it is still running."""
    global _warming
    with _lock:
        if _warming is not None or _matplotlib_ready:
            return
        # Not a daemon: a process leaving mid-import (a short console session) must wait for it, or
        # the interpreter tears down under native code and aborts ("terminate called ...").
        _warming = threading.Thread(target=_draw_once, name="matplotlib-warm-up")
    _warming.start()


def _draw_once() -> None:
    """A figure like the real ones (time axis, title, note, grid, bars), so that what a first chart
    would load lazily (date locators, font sizes, the PNG writer) is loaded now."""
    import io

    with _lock:
        fig = _figure()
        ax = fig.add_subplot()
        ax.plot(np.array(["2024-01-01", "2024-02-01"], dtype="datetime64[ns]"), [0.0, 1.0])
        ax.stairs([1.0, 2.0], [0.0, 1.0, 2.0], fill=True)
        ax.set_title("warm-up", fontsize=13, y=1.0, pad=8)
        fig.text(0.99, 0.005, "warm-up", ha="right", va="bottom", fontsize=8, color="0.4")
        ax.grid(True, alpha=0.3)
        fig.savefig(io.BytesIO(), format="png")


def _figure() -> Any:
    """A new Agg-backed Figure (imports matplotlib once per process; call under ``_lock``)."""
    global _matplotlib_ready
    if not _matplotlib_ready:
        import matplotlib

        matplotlib.use("Agg")
        _matplotlib_ready = True
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    fig.subplots_adjust(left=0.11, right=0.94, top=0.92, bottom=0.17)
    FigureCanvasAgg(fig)
    return fig


def minmax_indices(y: np.ndarray, n_out: int) -> np.ndarray:
    """Row indices, ascending, keeping the min and max of each of ``n_out // 2`` equal row buckets.

    NaN is ignored; a bucket of only NaN contributes nothing. Short inputs come back whole.
    """
    n = len(y)
    buckets = max(1, n_out // 2)
    if n <= n_out:
        return np.arange(n)
    size = -(-n // buckets)
    padded = np.full(buckets * size, np.nan)
    padded[:n] = y
    grid = padded.reshape(buckets, size)
    nan = np.isnan(grid)
    lo = np.where(nan, np.inf, grid).argmin(axis=1)
    hi = np.where(nan, -np.inf, grid).argmax(axis=1)
    base = np.arange(buckets) * size
    idx = np.unique(np.concatenate([base + lo, base + hi]))
    idx = idx[idx < n]
    return idx[~np.isnan(y[idx])]


def _names(columns: list[Column]) -> str:
    return ", ".join(c.name for c in columns) or "none"


def _column(meta: DatasetMeta, name: str | None, role: str) -> Column:
    col = meta.column(name) if name else None
    if col is None:
        raise DatasetError(f'no column "{name}" for {role}; columns: {_names(list(meta.columns))}')
    return col


def validate(meta: DatasetMeta, spec: ChartSpec) -> tuple[Column, Column | None]:
    """The x and y columns of ``spec``, or a ``DatasetError`` saying what would work."""
    numeric = [c for c in meta.columns if c.numeric]
    timeish = ("datetime", "date")

    def need_numeric(role: str, name: str | None) -> Column:
        if name is None or (meta.column(name) is not None and not meta.column(name).numeric):  # type: ignore[union-attr]
            raise DatasetError(f"chart {spec.kind} needs a numeric {role} column; numeric columns: {_names(numeric)}")
        return _column(meta, name, role)

    x = _column(meta, spec.x, "X")
    y = _column(meta, spec.y, "Y") if spec.y else None
    if x.type == "other" and spec.kind != "hist":
        raise DatasetError(f'column "{x.name}" cannot be charted (it holds {x.type} values)')
    if spec.kind == "line":
        if y is None:
            need_numeric("Y", x.name)
        else:
            need_numeric("Y", y.name)
    elif spec.kind == "scatter":
        if not (x.numeric or x.type in timeish):
            raise DatasetError(f"chart scatter needs a numeric or time X column; numeric columns: {_names(numeric)}")
        need_numeric("Y", spec.y)
    elif spec.kind == "bar":
        if y is not None:
            need_numeric("Y", y.name)
    elif spec.kind == "hist":
        if not (x.numeric or x.type in timeish):
            raise DatasetError(f"chart hist needs a numeric or time column; numeric columns: {_names(numeric)}")
        y = None
    elif spec.kind == "box":
        if y is None:
            need_numeric("X", x.name)
        else:
            need_numeric("Y", y.name)
    else:
        raise DatasetError(f"unknown chart kind {spec.kind!r}; use line, bar, scatter, hist or box")
    return x, y


def _floats(col: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.cast(col, pa.float64()), np.nan).to_numpy())


def _times(col: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_timestamp(col.type) and col.type.tz is not None:
        col = pc.cast(col, pa.timestamp(col.type.unit))  # wall-clock UTC; matplotlib wants naive
    return np.asarray(col.to_numpy())


def _x_values(col: pa.ChunkedArray, column: Column) -> np.ndarray | None:
    """Plottable x values, or None when x is categorical (plotted by row order)."""
    if column.numeric:
        return _floats(col)
    if column.type in ("datetime", "date"):
        return _times(col)
    return None


class _Source:
    """The data a chart reads: whole columns (read once), a few rows, or a column's summary."""

    def __init__(self, table: TableFile, summaries: Mapping[str, ColumnSummary]) -> None:
        self.table = table
        self.summaries = summaries
        self._columns: dict[str, pa.ChunkedArray] = {}

    def column(self, name: str) -> pa.ChunkedArray:
        if name not in self._columns:
            self._columns[name] = self.table.columns([name]).column(name)
        return self._columns[name]

    def rows(self, name: str, rows: np.ndarray) -> pa.ChunkedArray:
        """Values of ``name`` at a few ``rows`` (reads only their batches unless the column is loaded)."""
        if name in self._columns:
            return pa.chunked_array([gather.take(self._columns[name], rows)])
        return self.table.take(rows).column(name)

    def values_at(self, name: str, rows: np.ndarray) -> pa.ChunkedArray | None:
        """Values of ``name`` at ``rows`` without reading the column, when its type allows."""
        if name in self._columns:
            return None
        values = self.table.values_at(name, rows)
        return None if values is None else pa.chunked_array([values])

    def summary(self, name: str, rows: int) -> ColumnSummary | None:
        """The column's summary when it pays to use it (long columns only)."""
        return self.summaries.get(name) if rows > LINE_POINTS else None


def chart_title(meta: DatasetMeta, spec: ChartSpec) -> str:
    """The title a chart of ``spec`` carries, drawn as a PNG or sent as data."""
    return f"{meta.name}: {spec.kind} of {spec.y + ' by ' if spec.y else ''}{spec.x}"


def render(table: TableFile, meta: DatasetMeta, spec: ChartSpec, out: Path,
           summaries: Mapping[str, ColumnSummary] | None = None) -> Path:
    """Draw ``spec`` for the dataset in ``table`` into ``out`` (blocking; call from a worker thread)."""
    x, y = validate(meta, spec)
    src = _Source(table, summaries or {})
    out.parent.mkdir(parents=True, exist_ok=True)
    with _lock:
        fig = _figure()
        ax = fig.add_subplot()
        draw = {"line": _line, "scatter": _scatter, "bar": _bar, "hist": _hist, "box": _box}[spec.kind]
        note = draw(ax, src, meta.rows, x, y)
        title = chart_title(meta, spec)
        # An explicit y: matplotlib otherwise measures every tick label to place the title (~60 ms).
        ax.set_title(truncate(title, 80), fontsize=13, y=1.0, pad=8)
        if note:
            fig.text(0.99, 0.005, note, ha="right", va="bottom", fontsize=8, color="0.4")
        ax.grid(True, alpha=0.3)
        fig.savefig(out, format="png")
    return out


def _line(ax: Any, src: _Source, n: int, x: Column, y: Column | None) -> str:
    ycolumn, xcolumn = (x, None) if y is None else (y, x)
    summary = src.summary(ycolumn.name, n)
    if summary is not None and 4 * len(summary.min) >= LINE_POINTS:  # at least half the points the data gives
        idx = summary.extremes()
        yv = _summary_values(summary, idx)
    else:
        values = _floats(src.column(ycolumn.name))
        idx = minmax_indices(values, LINE_POINTS)
        yv = values[idx]
    positions: np.ndarray = idx
    plottable = xcolumn is not None and (xcolumn.numeric or xcolumn.type in ("datetime", "date"))
    if xcolumn is not None and plottable:
        at = src.values_at(xcolumn.name, idx)
        xv = _x_values(at if at is not None else src.column(xcolumn.name), xcolumn)
        assert xv is not None  # numeric or time: plottable
        positions = xv if at is not None else xv[idx]
    if len(idx) < n and len(idx) > 2 and bool(np.all(positions[1:] >= positions[:-1])):
        _envelope(ax, positions, yv)
    else:
        ax.plot(positions, yv, linewidth=1.0, color="tab:blue")
    if not plottable and xcolumn is not None and len(idx):
        ticks = np.linspace(0, n - 1, num=min(6, n)).astype(np.int64)
        labels = [truncate(format_cell(v), 14) for v in src.rows(xcolumn.name, ticks).to_pylist()]
        ax.set_xticks(ticks, labels, rotation=20, ha="right")
    ax.set_xlabel("row" if xcolumn is None else xcolumn.name)
    ax.set_ylabel(ycolumn.name)
    return f"{n:,} rows, min/max-downsampled to {len(idx):,} points" if len(idx) < n else f"{n:,} rows"


def _envelope(ax: Any, positions: np.ndarray, yv: np.ndarray) -> None:
    """A min/max-downsampled series as the band between each pair of neighbouring points' lower and
    upper value, outlined. The zigzag through those points fills that band at this density, but
    stroking thousands of full-height segments costs ~100 ms; filling one polygon ~25 ms. Every
    point lies on the outline, so peaks and troughs stay; a smooth series is a band of the line's width."""
    if len(yv) % 2:
        positions, yv = np.r_[positions, positions[-1:]], np.r_[yv, yv[-1:]]
    first, second = yv[0::2], yv[1::2]
    ax.fill_between(positions[0::2], np.fmin(first, second), np.fmax(first, second),
                    color="tab:blue", linewidth=1.0)


def _summary_values(summary: ColumnSummary, rows: np.ndarray) -> np.ndarray:
    """The values at ``rows`` (each a batch's minimum or maximum row), from the summary alone."""
    values = np.concatenate([summary.min, summary.max])
    at = np.concatenate([summary.argmin, summary.argmax])
    keep = at >= 0
    lookup = dict(zip(at[keep].tolist(), values[keep].tolist(), strict=True))
    return np.array([lookup[r] for r in rows.tolist()], dtype=float)


def _scatter(ax: Any, src: _Source, n: int, x: Column, y: Column | None) -> str:
    assert y is not None
    xv, yv = _x_values(src.column(x.name), x), _floats(src.column(y.name))
    assert xv is not None
    n = len(yv)
    if n > SCATTER_POINTS:
        rng = np.random.default_rng(0)
        pick = rng.integers(0, n, SCATTER_POINTS)
        xnum = xv.astype("int64").astype(float) if xv.dtype.kind == "M" else xv
        extremes = [f(a) for a in (xnum, yv) if not np.all(np.isnan(a)) for f in (np.nanargmin, np.nanargmax)]
        pick = np.unique(np.concatenate([pick, np.asarray(extremes, dtype=np.int64)]))
        xv, yv = xv[pick], yv[pick]
    ax.plot(xv, yv, linestyle="", marker=".", markersize=2, alpha=0.4, color="tab:blue")
    ax.set_xlabel(x.name)
    ax.set_ylabel(y.name)
    return f"{n:,} rows, {len(yv):,} sampled" if len(yv) < n else f"{n:,} rows"


def bar_groups(xcol: pa.ChunkedArray, ycol: pa.ChunkedArray | None, x: Column,
               limit: int) -> tuple[list[Any], np.ndarray, int]:
    """What a bar chart shows: the x values, their bars (sum of y per x value, or the row count with
    no y) and how many x values there are. Numbers and dates come in x order when there are at most
    ``limit`` of them, anything else by bar size, largest first, the ``limit`` largest."""
    if ycol is None:
        grouped = pa.table({"x": xcol}).group_by("x").aggregate([([], "count_all")])
        values = grouped.column("count_all")
    else:
        grouped = pa.table({"x": xcol, "y": pc.cast(ycol, pa.float64())}).group_by("x").aggregate([("y", "sum")])
        values = grouped.column("y_sum")
    keys, vals = grouped.column("x"), np.asarray(pc.fill_null(values, 0).to_numpy(), dtype=float)
    groups = len(vals)
    if groups <= limit and x.type in ("int", "float", "date", "datetime", "bool"):
        order = np.asarray(pc.array_sort_indices(keys, null_placement="at_end"))
    else:
        order = np.argsort(-vals, kind="stable")[:limit]
    return keys.take(pa.array(order)).to_pylist(), vals[order], groups


def _bar(ax: Any, src: _Source, n: int, x: Column, y: Column | None) -> str:
    keys, vals, groups = bar_groups(src.column(x.name), None if y is None else src.column(y.name), x, BAR_CATEGORIES)
    ylabel = "rows" if y is None else f"sum of {y.name}"
    labels = [truncate(format_cell(v), 18) or "(empty)" for v in keys]
    positions = np.arange(len(keys))
    ax.bar(positions, vals, color="tab:blue")
    ax.set_xticks(positions, labels, rotation=45 if len(keys) > 6 else 0, ha="right" if len(keys) > 6 else "center")
    ax.set_xlabel(x.name)
    ax.set_ylabel(ylabel)
    return f"top {len(keys)} of {groups:,} values" if len(keys) < groups else ""


def _hist(ax: Any, src: _Source, n: int, x: Column, y: Column | None) -> str:
    summary = src.summary(x.name, n) if x.numeric else None
    binned = summary.histogram(HIST_BINS) if summary is not None else None
    if binned is not None:
        counts, edges = binned
        ax.stairs(counts, edges, fill=True, color="tab:blue")
        return f"{int(counts.sum()):,} values, {HIST_BINS} bins"
    if x.numeric:
        values = _floats(src.column(x.name))
        values = values[np.isfinite(values)]
        counts, edges = np.histogram(values, bins=HIST_BINS) if len(values) else (np.zeros(1), np.arange(2.0))
        ax.stairs(counts, edges, fill=True, color="tab:blue")
    else:
        from matplotlib import dates as mdates

        times = _times(src.column(x.name))
        times = times[~np.isnat(times)]
        ints = times.astype("datetime64[ns]").astype(np.int64)
        counts, edges = np.histogram(ints, bins=HIST_BINS) if len(ints) else (np.zeros(1), np.arange(2.0))
        ax.stairs(counts, mdates.date2num(edges.astype("datetime64[ns]")), fill=True, color="tab:blue")
        ax.xaxis_date()
        values = times
    ax.set_xlabel(x.name)
    ax.set_ylabel("rows")
    return f"{len(values):,} values, {HIST_BINS} bins"


def _stats(values: np.ndarray, label: str) -> dict[str, Any]:
    lo, q1, med, q3, hi = np.quantile(values, [0, 0.25, 0.5, 0.75, 1])
    iqr = q3 - q1
    return {"label": label, "med": med, "q1": q1, "q3": q3, "fliers": [],
            "whislo": max(lo, q1 - 1.5 * iqr), "whishi": min(hi, q3 + 1.5 * iqr)}


def _box(ax: Any, src: _Source, n: int, x: Column, y: Column | None) -> str:
    xcol = src.column(x.name)
    if y is None:
        values = _floats(xcol)
        values = values[~np.isnan(values)]
        if not len(values):
            raise DatasetError(f'column "{x.name}" has no values to chart')
        ax.bxp([_stats(values, x.name)], showfliers=False)
        ax.set_ylabel(x.name)
        return f"{len(values):,} values; whiskers at 1.5 IQR"
    frame = pa.table({"x": xcol, "y": pc.cast(src.column(y.name), pa.float64())}).filter(pc.is_valid(pc.field("y")))
    sizes = frame.group_by("x").aggregate([([], "count_all")]).sort_by([("count_all", "descending")])
    keys = sizes.column("x").slice(0, BOX_GROUPS)
    boxes = []
    for key in keys.to_pylist():
        mask = pc.is_null(frame.column("x")) if key is None else pc.equal(frame.column("x"), key)
        values = np.asarray(frame.column("y").filter(mask).to_numpy())
        if len(values):
            boxes.append(_stats(values, truncate(format_cell(key), 18) or "(empty)"))
    if not boxes:
        raise DatasetError(f'column "{y.name}" has no values to chart')
    ax.bxp(boxes, showfliers=False)
    if len(boxes) > 6:
        ax.tick_params(axis="x", labelrotation=45)
    ax.set_xlabel(x.name)
    ax.set_ylabel(y.name)
    groups = sizes.num_rows
    return f"{len(boxes)} most frequent of {groups:,} values" if len(boxes) < groups else ""
