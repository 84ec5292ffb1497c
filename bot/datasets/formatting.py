"""Logical column types and cell display strings, shared by previews, pages and chart labels.

Display rules (one place, so every surface shows the same text):

- missing values (null, NaN, NaT) are the empty string;
- ints print plainly with no separators, so ids and years stay recognisable (``20240105``);
- floats print with up to ten significant digits and no trailing zeros (``1.5``, ``149998.5``,
  ``0.1`` for ``0.1 + 0.2 - 0.2``), switching to exponent form outside ``1e-4 .. 1e15`` (``1e-07``):
  a table must not show a different number than the data holds, but binary noise is not data;
- timestamps are ISO 8601 with a space and without trailing zeros in the fraction
  (``2024-01-05 13:45:00``, ``2024-01-05 13:45:00.25``, ``2024-01-05 13:45:00Z`` when UTC-aware);
- strings have control characters turned into spaces and are cut at 60 characters with ``…``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa

MAX_CELL_CHARS = 60
_CONTROL = {i: " " for i in range(32)}


def logical_type(t: pa.DataType) -> str:
    """The user-facing type of an Arrow type: int, float, str, bool, datetime, date or other."""
    if pa.types.is_dictionary(t):
        return logical_type(t.value_type)
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "str"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_timestamp(t):
        return "datetime"
    if pa.types.is_date(t):
        return "date"
    return "other"


def truncate(text: str, limit: int = MAX_CELL_CHARS) -> str:
    text = text.translate(_CONTROL)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_float(v: float) -> str:
    if math.isnan(v):
        return ""
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    a = abs(v)
    if 1e-4 <= a < 1e15:
        decimals = max(0, 9 - math.floor(math.log10(a)))
        text = f"{v:.{decimals}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    return f"{v:.10g}"


def format_datetime(v: datetime) -> str:
    nanos = getattr(v, "nanosecond", 0)  # pandas Timestamps carry sub-microsecond digits
    text = v.strftime("%Y-%m-%d %H:%M:%S")
    if v.microsecond or nanos:
        text += "." + f"{v.microsecond:06d}{nanos:03d}".rstrip("0")
    offset = v.utcoffset()
    if offset is not None:
        text += "Z" if not offset else v.strftime("%z")[:3] + ":" + v.strftime("%z")[3:]
    return text


def format_cell(v: Any) -> str:
    """The display string of one Python value as produced by ``pyarrow`` ``to_pylist``."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_float(v)
    if isinstance(v, str):
        return truncate(v)
    if isinstance(v, datetime):
        return format_datetime(v)
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, bytes):
        return f"<{len(v)} bytes>"
    return truncate(str(v))


def _column_values(col: pa.Array | pa.ChunkedArray) -> list[Any]:
    if pa.types.is_timestamp(col.type) and col.type.unit == "ns":
        # to_pylist refuses ns values that do not fit a datetime; go through pandas Timestamps.
        import pandas as pd

        return [None if v is pd.NaT else v for v in col.to_pandas().tolist()]
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return col.to_pylist()


Cells: TypeAlias = "pa.Array | pa.ChunkedArray"
#: Turns the few values of one column shown on a page into their display strings.
ColumnFormatter = Callable[[Cells], list[str]]


def cells_one_by_one(col: Cells) -> list[str]:
    """Every value through ``format_cell`` (the reference, and the fallback for rare types)."""
    return [format_cell(v) for v in _column_values(col)]


def _ints(col: Cells) -> list[str]:
    return ["" if v is None else str(v) for v in col.to_pylist()]


def _floats(col: Cells) -> list[str]:
    # nulls come back as NaN, which displays as "" like a null.
    return [format_float(v) for v in col.to_numpy(zero_copy_only=False).astype(np.float64).tolist()]


def _strings(col: Cells) -> list[str]:
    return ["" if v is None else truncate(v) for v in col.to_pylist()]


def _bools(col: Cells) -> list[str]:
    return ["" if v is None else ("true" if v else "false") for v in col.to_pylist()]


def _naive_timestamps(col: Cells) -> list[str]:
    # numpy prints any int64 timestamp (no datetime range limit, no pandas); the display rule then
    # drops the "T" and the fraction's trailing zeros.
    values = col.to_numpy(zero_copy_only=False)
    out = []
    for text in np.datetime_as_string(values).tolist():
        if text == "NaT":
            out.append("")
            continue
        head, _, frac = text.partition(".")
        frac = frac.rstrip("0")
        out.append(head.replace("T", " ") + ("." + frac if frac else ""))
    return out


def column_formatter(t: pa.DataType) -> ColumnFormatter:
    """The formatter for values of Arrow type ``t``; same strings as ``format_cell``, chosen once
    per column instead of per cell (a page is ~70 % formatting otherwise)."""
    if pa.types.is_dictionary(t):
        inner = column_formatter(t.value_type)
        return lambda col: inner(col.cast(t.value_type))
    if pa.types.is_integer(t):
        return _ints
    if pa.types.is_floating(t):
        return _floats
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _strings
    if pa.types.is_boolean(t):
        return _bools
    if pa.types.is_timestamp(t) and t.tz is None:
        return _naive_timestamps
    return cells_one_by_one


class RowFormatter:
    """Display strings of rows of one schema, with each column's formatter chosen at construction."""

    def __init__(self, schema: pa.Schema) -> None:
        self._formatters = [column_formatter(f.type) for f in schema]

    def __call__(self, table: pa.Table | pa.RecordBatch) -> tuple[tuple[str, ...], ...]:
        if not self._formatters:
            return tuple(() for _ in range(table.num_rows))
        columns = [fmt(table.column(i)) for i, fmt in enumerate(self._formatters)]
        return tuple(zip(*columns, strict=True))


def format_rows(table: pa.Table | pa.RecordBatch) -> tuple[tuple[str, ...], ...]:
    """Rows of ``table`` as display strings, column order kept."""
    return RowFormatter(table.schema)(table)
