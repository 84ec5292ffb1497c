"""Exports of a whole dataset as CSV or Parquet, shared by every dataset store.

A store hands over its batches (in stored order, or gathered through a sort permutation) and the
file is written under a temporary name, made private and renamed into place, so a reader never sees
half a file and a failure leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa

from bot.datasets.model import DatasetError, ExportFormat
from bot.datasets.tablefile import TableFile
from bot.private import make_private

#: Rows per Parquet row group of an export.
EXPORT_ROW_GROUP = 131_072
#: Rows gathered at a time (by the sort permutation) for a sorted export.
EXPORT_SORTED_ROWS = 65_536


class Positions(Protocol):
    """A sort permutation: the row numbers at sorted positions ``start:stop``."""

    def positions(self, start: int, stop: int) -> np.ndarray: ...


def check_format(fmt: str) -> None:
    """Raise ``DatasetError`` (shown to the user) for a format we do not export, before any work."""
    if fmt not in ("csv", "parquet"):
        raise DatasetError(f"cannot export as {fmt!r}; use csv or parquet")


def export_batches(table: TableFile, rows: int, order: Positions | None) -> Iterator[pa.RecordBatch]:
    """The table's batches in stored order, or in ``order`` a chunk of rows at a time."""
    if order is None:
        yield from table.batches()
        return
    for start in range(0, rows, EXPORT_SORTED_ROWS):
        yield from table.take(order.positions(start, min(start + EXPORT_SORTED_ROWS, rows))).to_batches()


def write_export(batches: Iterable[pa.RecordBatch], schema: pa.Schema, fmt: ExportFormat, out: Path) -> Path:
    """Write ``batches`` to ``out`` as ``fmt`` (private, complete or not at all); ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    try:
        if fmt == "csv":
            import pyarrow.csv as pcsv

            with pcsv.CSVWriter(str(tmp), schema) as writer:
                for batch in batches:
                    writer.write_batch(batch)
        else:
            import pyarrow.parquet as pq

            with pq.ParquetWriter(str(tmp), schema, compression="zstd") as writer:
                group: list[pa.RecordBatch] = []
                written = False
                for batch in batches:
                    group.append(batch)
                    if sum(b.num_rows for b in group) >= EXPORT_ROW_GROUP:
                        writer.write_table(pa.Table.from_batches(group, schema=schema))
                        group, written = [], True
                if group or not written:  # an empty dataset still gets its schema
                    writer.write_table(pa.Table.from_batches(group, schema=schema))
        make_private(tmp)
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out
