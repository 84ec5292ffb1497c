"""A chart's x values at its downsampled rows, read from only the bytes they sit in, are exactly the
column's values there (or the caller is told to read the column)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from bot.datasets.tablefile import BATCH_ROWS, TableFile, write_batches


def _file(tmp_path: Path, table: pa.Table, compression: str | None = None) -> TableFile:
    path = tmp_path / "data.arrow"
    write_batches(path, table.schema, table.to_batches(max_chunksize=BATCH_ROWS), compression)
    return TableFile(path)


def test_values_at_rows_across_batches_equal_the_column_there(tmp_path: Path) -> None:
    n = 3 * BATCH_ROWS + 17
    rng = np.random.default_rng(1)
    table = pa.table({
        "ts": pa.array(np.datetime64("2024-01-01", "ns") + rng.integers(0, 10**12, n).astype("timedelta64[ns]")),
        "f": rng.normal(size=n),
        "i": pa.array(rng.integers(-100, 100, n), pa.int16()),
        "s": [str(v) for v in range(n)],
    })
    file = _file(tmp_path, table)
    rows = np.array([0, 5, BATCH_ROWS - 1, BATCH_ROWS, 2 * BATCH_ROWS + 3, n - 1])
    for name in ("ts", "f", "i"):
        assert file.values_at(name, rows) == table.column(name).take(pa.array(rows)).combine_chunks()
    assert file.values_at("s", rows) is None  # variable width: read the column
    file.close()


def test_columns_with_nulls_or_compressed_files_are_read_whole(tmp_path: Path) -> None:
    n = 2 * BATCH_ROWS
    table = pa.table({"f": pa.array([None if i == n - 1 else float(i) for i in range(n)]), "g": np.arange(n)})
    (tmp_path / "a").mkdir()
    file = _file(tmp_path / "a", table)
    assert file.values_at("f", np.array([0, 1])) is None
    (tmp_path / "b").mkdir()
    compressed = _file(tmp_path / "b", table, "lz4")
    assert compressed.values_at("g", np.array([0, 1])) is None
    file.close()
    compressed.close()
