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
from datetime import date, datetime
from typing import Any

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


def format_rows(table: pa.Table | pa.RecordBatch) -> tuple[tuple[str, ...], ...]:
    """Rows of ``table`` as display strings, column order kept."""
    columns = [[format_cell(v) for v in _column_values(table.column(i))] for i in range(table.num_columns)]
    return tuple(zip(*columns, strict=True)) if columns else tuple(() for _ in range(table.num_rows))
