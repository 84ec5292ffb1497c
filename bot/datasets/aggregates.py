"""Charts small enough to send as data, for platforms that draw charts themselves.

A bar chart of at most ``MAX_CATEGORIES`` x values (sum of y per value, or the row count) and a
line chart of at most ``MAX_CATEGORIES`` rows are small aggregates: ``small_aggregate`` returns
their numbers (``ChartData``), in the order the PNG shows them (``charts.bar_groups``). Anything
else — more groups or rows, a histogram, scatter or box plot, a missing y value (a native chart
needs a finite value per category), two x values that read the same — is ``None``: it stays a
downsampled PNG (``bot.datasets.charts``). 20 is Slack's most categories of a ``data_visualization``
chart (docs.slack.dev/reference/block-kit/blocks/data-visualization-block).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from bot.datasets.charts import bar_groups, chart_title, validate
from bot.datasets.formatting import format_cell
from bot.datasets.model import ChartData, ChartSeries, ChartSpec, DatasetMeta

if TYPE_CHECKING:
    from bot.datasets.tablefile import TableFile

MAX_CATEGORIES = 20


def may_be_small(meta: DatasetMeta, spec: ChartSpec) -> bool:
    """False when ``spec`` is known not to be a small aggregate before any data is read."""
    return spec.kind == "bar" or (spec.kind == "line" and meta.rows <= MAX_CATEGORIES)


def small_aggregate(table: TableFile, meta: DatasetMeta, spec: ChartSpec) -> ChartData | None:
    """``spec`` as data when it is a small aggregate (see the module doc), else ``None``. Blocking:
    call from a worker thread. ``DatasetError`` for a spec no chart can show."""
    x, y = validate(meta, spec)
    if spec.kind == "bar":
        ycol = None if y is None else table.columns([y.name]).column(y.name)
        keys, values, groups = bar_groups(table.columns([x.name]).column(x.name), ycol, x, MAX_CATEGORIES)
        if groups > MAX_CATEGORIES:
            return None
        labels = [format_cell(k) or "(empty)" for k in keys]
        series = ChartSeries("rows" if y is None else f"sum of {y.name}", _finite(values))
        return _chart("bar", meta, spec, labels, series, x.name, series.name)
    if spec.kind == "line" and may_be_small(meta, spec):
        ycolumn = x if y is None else y
        read = table.columns([x.name] if y is None else [x.name, y.name])
        values = np.asarray([math.nan if v is None else float(v) for v in read.column(ycolumn.name).to_pylist()])
        labels = ([str(i + 1) for i in range(len(values))] if y is None
                  else [format_cell(v) or "(empty)" for v in read.column(x.name).to_pylist()])
        if not len(values) or not np.all(np.isfinite(values)):
            return None
        return _chart("line", meta, spec, labels, ChartSeries(ycolumn.name, _finite(values)),
                      "row" if y is None else x.name, ycolumn.name)
    return None


def _finite(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) if math.isfinite(v) else 0.0 for v in values.tolist())


def _chart(kind: str, meta: DatasetMeta, spec: ChartSpec, labels: list[str], series: ChartSeries,
           x_label: str, y_label: str) -> ChartData | None:
    if not labels or len(set(labels)) != len(labels):  # a category names one point: two alike are ambiguous
        return None
    assert kind in ("bar", "line")
    return ChartData("bar" if kind == "bar" else "line", chart_title(meta, spec), tuple(labels), (series,),
                     x_label, y_label)
