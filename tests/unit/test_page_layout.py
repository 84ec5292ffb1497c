"""A page read through the layout file (``bot.datasets.layout``) holds exactly the rows a read of the
whole batch holds, reads only a few kilobytes of the data file, and files without a layout (other
types, compressed, or written before layouts existed) still page the same way."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from bot.datasets.layout import layout_path, write_layout
from bot.datasets.local import LocalDatasetStore
from bot.datasets.tablefile import BATCH_ROWS, DATA_FILE, TableFile, write_batches
from bot.messages import ThreadKey

ROWS = 2 * BATCH_ROWS + 1000  # two whole batches and a partial one
KEY = ThreadKey("test", "T", "C", "1.0")


@pytest.fixture(scope="module")
def flat() -> pa.Table:
    """Every flat type, with nulls, over two whole batches and a partial one."""
    return every_flat_type(ROWS)


def every_flat_type(n: int) -> pa.Table:
    rng = np.random.default_rng(3)
    gaps = rng.random(n) < 0.2
    gaps[BATCH_ROWS : 2 * BATCH_ROWS] = False  # one batch with no nulls at all: no bitmap in the file

    def holes(values: list[object]) -> list[object]:
        return [None if g else v for v, g in zip(values, gaps, strict=True)]

    words = ["", "a", "héllo wörld", "日本語のテキスト", "x" * 300]
    return pa.table({
        "i64": pa.array(holes(list(range(n))), pa.int64()),
        "u8": pa.array(np.arange(n) % 256, pa.uint8()),
        "f32": pa.array(holes([float(v) for v in rng.normal(size=n).astype(np.float32)]), pa.float32()),
        "f64": pa.array(np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n))),
        "flag": pa.array(holes([bool(v) for v in rng.random(n) < 0.5]), pa.bool_()),
        "text": pa.array(holes([words[i % 5] + str(i) for i in range(n)]), pa.string()),
        "large": pa.array([words[i % 5] for i in range(n)], pa.large_string()),
        "raw": pa.array(holes([bytes([i % 256]) * (i % 7) for i in range(n)]), pa.binary()),
        "ts": pa.array(holes([int(v) for v in np.arange(n) * 1_000_000_007]), pa.timestamp("ns", tz="UTC")),
        "day": pa.array(holes(list(range(n))), pa.int32()).cast(pa.date32()),
        "clock": pa.array(np.arange(n) * 1000, pa.time64("us")),
        "wait": pa.array(np.arange(n), pa.duration("ms")),
        "money": pa.array(holes([Decimal(i) / 100 for i in range(n)]), pa.decimal128(12, 2)),
        "blank": pa.array([""] * n, pa.string()),  # no string bytes at all
        "none": pa.array([None] * n, pa.string()),
    })


def write(folder: Path, table: pa.Table, compression: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / DATA_FILE
    write_batches(path, table.schema, table.to_batches(max_chunksize=5000), compression)
    return path


def whole_batches(path: Path, start: int, stop: int) -> pa.Table:
    """Rows ``start:stop`` the old way: every batch they are in, read whole through the footer."""
    with pa.OSFile(str(path), "rb") as f:
        reader = pa.ipc.open_file(f)
        first, last = start // BATCH_ROWS, (stop - 1) // BATCH_ROWS
        batches = [reader.get_batch(i) for i in range(first, last + 1)]
        return pa.Table.from_batches(batches).slice(start - first * BATCH_ROWS, stop - start)


def same(a: pa.Table, b: pa.Table) -> bool:
    """Equal schemas and values, NaN equal to NaN (``Table.equals`` says NaN differs from itself)."""
    def plain(t: pa.Table) -> pa.Table:
        columns = [pc.if_else(pc.is_nan(c), -1e300, c) if pa.types.is_floating(c.type) else c for c in t.columns]
        return pa.table(columns, schema=t.schema)

    return a.schema == b.schema and plain(a).equals(plain(b))


def bytes_read(fn: object) -> int:
    """Bytes this thread read through system calls while running ``fn``."""
    def rchar() -> int:
        for row in Path("/proc/thread-self/io").read_text().splitlines():
            if row.startswith("rchar:"):
                return int(row.split()[1])
        raise AssertionError("no rchar")

    before = rchar()
    fn()  # type: ignore[operator]
    return rchar() - before


def test_rows_through_the_layout_equal_the_whole_batch_for_every_flat_type_and_offset(
        tmp_path: Path, flat: pa.Table) -> None:
    table = flat
    path = write(tmp_path, table)
    assert write_layout(path) == layout_path(path)
    spans = [(s, s + n) for s in range(0, 10) for n in (1, 7, 20)]
    spans += [(BATCH_ROWS - 13, BATCH_ROWS + 7), (BATCH_ROWS - 20, BATCH_ROWS), (2 * BATCH_ROWS - 3, ROWS),
              (ROWS - 1, ROWS), (BATCH_ROWS + 4093, BATCH_ROWS + 4133)]
    for start, stop in spans:
        page = TableFile(path).slice(start, stop)
        assert same(page, whole_batches(path, start, stop)), (start, stop)
        assert page.schema == table.schema
    # The caller's field and batch counts place the first read; wrong ones only cost a second read.
    for expect in ((table.num_columns, 3), (table.num_columns + 1, 3), (table.num_columns, 99)):
        for start, stop in ((5, 25), (2 * BATCH_ROWS - 3, ROWS)):
            file = TableFile(path, expect=expect)
            assert same(file.slice(start, stop), whole_batches(path, start, stop)), (expect, start, stop)
            assert same(file.slice(7, 9), whole_batches(path, 7, 9))
            file.close()


def test_a_page_reads_a_few_kilobytes_not_its_whole_batch(tmp_path: Path, flat: pa.Table) -> None:
    path = write(tmp_path, flat)
    write_layout(path)
    batch_bytes = path.stat().st_size // 3
    middle = BATCH_ROWS + BATCH_ROWS // 2
    with_layout = TableFile(path)
    read = bytes_read(lambda: with_layout.slice(middle, middle + 20))
    with_layout.close()
    layout_path(path).unlink()
    without = TableFile(path)
    read_whole = bytes_read(lambda: without.slice(middle, middle + 20))
    without.close()
    assert read_whole > batch_bytes // 2  # the footer and the whole batch
    assert read < 40_000 < batch_bytes // 10, (read, read_whole)


def test_files_a_layout_cannot_describe_get_none_and_page_as_before(tmp_path: Path) -> None:
    nested = pa.table({"id": np.arange(ROWS), "tags": pa.array([[i, i + 1] for i in range(ROWS)])})
    compressed = pa.table({"id": np.arange(ROWS), "v": np.arange(ROWS) * 0.5})
    for folder, table, codec in (("nested", nested, None), ("lz4", compressed, "lz4")):
        path = write(tmp_path / folder, table, codec)
        assert write_layout(path) is None and not layout_path(path).exists()
        file = TableFile(path)
        assert same(file.slice(BATCH_ROWS - 5, BATCH_ROWS + 5), whole_batches(path, BATCH_ROWS - 5, BATCH_ROWS + 5))
        file.close()


def test_a_broken_layout_file_is_ignored(tmp_path: Path, flat: pa.Table) -> None:
    path = write(tmp_path, flat)
    layout_path(path).write_bytes(b"not a layout file at all")
    file = TableFile(path)
    assert same(file.slice(10, 30), whole_batches(path, 10, 30))
    file.close()


@pytest.mark.parametrize("keep_layout", [True, False], ids=["with layout", "registered before layouts"])
async def test_a_new_store_shows_the_same_pages_with_or_without_the_layout(tmp_path: Path, keep_layout: bool) -> None:
    source = pd.DataFrame({"id": [f"R{i:05d}" for i in range(ROWS)], "v": np.arange(ROWS) * 1.5,
                           "when": pd.date_range("2026-01-01", periods=ROWS, freq="s")})
    store = LocalDatasetStore(tmp_path / "datasets", timedelta(hours=6))
    meta = await store.register_frame(source, name="df", thread=KEY, owner="U1")
    expected = [(await store.page(meta.id, k, 20)).rows for k in (1, 410, 411, 1000, 1051)]
    await store.aclose()
    data = tmp_path / "datasets" / meta.id / DATA_FILE
    assert layout_path(data).exists()
    if not keep_layout:
        layout_path(data).unlink()
    again = LocalDatasetStore(tmp_path / "datasets", timedelta(hours=6))
    assert [(await again.page(meta.id, k, 20)).rows for k in (1, 410, 411, 1000, 1051)] == expected
    assert expected[2][0] == ("R08200", "12300", "2026-01-01 02:16:40")
    await again.aclose()
