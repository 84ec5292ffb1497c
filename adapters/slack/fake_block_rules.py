"""What the fake Web API checks of Slack's newer blocks before it accepts a message.

Slack answers ``invalid_blocks`` to a block outside its documented shape; so does the fake, for the
blocks whose shape we build by hand (slack-sdk 3.48 has no models for them), so an end-to-end test
proves what we send is what Slack documents:

- ``data_table`` (docs.slack.dev/reference/block-kit/blocks/data-table-block): ``caption``
  required; 2–101 rows of 1–20 cells each, all rows as long; cells ``raw_text`` (non-empty text),
  ``raw_number`` (a number ``value``) or ``rich_text`` (not in the header); at most 10,000
  characters of cells; ``page_size`` 1–100; no other fields (``column_settings`` is the ``table``
  block's).
- ``data_visualization`` (docs.slack.dev/reference/block-kit/blocks/data-visualization-block):
  ``title`` of 1–50 characters; a pie of 1–6 segments (label ≤ 20 characters, value > 0); a bar,
  line or area chart of 1–6 uniquely named series (name ≤ 20) of 1–20 points whose labels are among
  ``axis_config.categories`` (each ≤ 20 characters), axis labels ≤ 50; at most 2 in a message.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

DATA_TABLE_FIELDS = frozenset({"type", "block_id", "caption", "rows", "page_size", "row_header_column_index"})
CHART_KINDS = frozenset({"pie", "bar", "line", "area"})


def block_errors(blocks: Sequence[dict[str, Any]]) -> list[str]:
    """Why Slack would refuse these blocks (empty when it would not)."""
    errors: list[str] = []
    charts = [b for b in blocks if b.get("type") == "data_visualization"]
    if len(charts) > 2:
        errors.append("more than 2 data_visualization blocks in one message")
    for block in blocks:
        if block.get("type") == "data_table":
            errors += [f"data_table: {e}" for e in _data_table(block)]
        elif block.get("type") == "data_visualization":
            errors += [f"data_visualization: {e}" for e in _chart(block)]
    return errors


def _data_table(block: dict[str, Any]) -> list[str]:
    errors = [f"unknown field {k}" for k in block if k not in DATA_TABLE_FIELDS]
    if not isinstance(block.get("caption"), str) or not block["caption"]:
        errors.append("caption required")
    rows = block.get("rows")
    if not isinstance(rows, list) or not 2 <= len(rows) <= 101:
        return [*errors, "2-101 rows required"]
    if len({len(r) for r in rows}) != 1 or not 1 <= len(rows[0]) <= 20:
        errors.append("rows of 1-20 cells, all as long")
    chars = 0
    for n, row in enumerate(rows):
        for cell in row:
            kind = cell.get("type")
            if kind == "raw_text" and isinstance(cell.get("text"), str) and cell["text"]:
                chars += len(cell["text"])
            elif kind == "raw_number" and _number(cell.get("value")):
                chars += len(str(cell.get("text") or cell["value"]))
            elif kind == "rich_text" and n > 0:
                chars += len(str(cell.get("elements")))
            else:
                errors.append(f"bad cell {cell!r} in row {n}")
    if chars > 10_000:
        errors.append("more than 10,000 characters of cells")
    page_size = block.get("page_size", 5)
    if not isinstance(page_size, int) or not 1 <= page_size <= 100:
        errors.append("page_size 1-100")
    return errors


def _chart(block: dict[str, Any]) -> list[str]:
    errors = []
    title = block.get("title")
    if not isinstance(title, str) or not 1 <= len(title) <= 50:
        errors.append("title of 1-50 characters required")
    chart = block.get("chart") or {}
    kind = chart.get("type")
    if kind not in CHART_KINDS:
        return [*errors, f"unknown chart type {kind!r}"]
    if kind == "pie":
        segments = chart.get("segments") or []
        if not 1 <= len(segments) <= 6:
            errors.append("1-6 segments")
        for s in segments:
            if not _label(s.get("label")) or not _number(s.get("value")) or s["value"] <= 0:
                errors.append(f"bad segment {s!r}")
        return errors
    axis = chart.get("axis_config") or {}
    categories = axis.get("categories")
    if not isinstance(categories, list) or not categories or not all(_label(c) for c in categories):
        errors.append("axis_config.categories of labels of 1-20 characters required")
        categories = []
    for key in ("x_label", "y_label"):
        if key in axis and not (isinstance(axis[key], str) and len(axis[key]) <= 50):
            errors.append(f"{key} over 50 characters")
    series = chart.get("series") or []
    names = [s.get("name") for s in series]
    if not 1 <= len(series) <= 6 or len(set(names)) != len(names) or not all(_label(n) for n in names):
        errors.append("1-6 uniquely named series (names of 1-20 characters)")
    for s in series:
        points = s.get("data") or []
        if not 1 <= len(points) <= 20:
            errors.append(f"series {s.get('name')!r}: 1-20 points")
        for p in points:
            if p.get("label") not in categories or not _number(p.get("value")):
                errors.append(f"series {s.get('name')!r}: bad point {p!r}")
    return errors


def _label(text: Any) -> bool:
    return isinstance(text, str) and 1 <= len(text) <= 20


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
