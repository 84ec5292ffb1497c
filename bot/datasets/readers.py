"""Turn a DataFrame or a tabular file into a schema and a stream of Arrow record batches.

Everything here is blocking; the store calls it from a worker thread. Frames are converted a slice
at a time so a 10M-row frame is never copied whole; Parquet and Arrow files are streamed; CSV, JSON
lines and Excel are parsed in one go (pyarrow's CSV reader is multi-threaded, and text files are
never memory-mapped as-is anyway).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pyarrow as pa

from bot.datasets.columns import CONVERSION_ERRORS, Storage, choose
from bot.datasets.columns import convert as convert_column
from bot.datasets.model import DatasetError

if TYPE_CHECKING:
    import pandas as pd

FRAME_CHUNK_ROWS = 262_144
TABULAR_SUFFIXES = (".csv", ".tsv", ".parquet", ".jsonl", ".ndjson", ".xlsx", ".arrow", ".feather")

class Source(NamedTuple):
    """A table to store: its schema, its batches, and the columns left out (they could not be stored)."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]
    dropped: tuple[str, ...] = ()


def _unique_names(names: list[Any]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for raw in names:
        name = " / ".join(map(str, raw)) if isinstance(raw, tuple) else str(raw)
        name = name or "column"
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        seen.setdefault(name, 0)
        out.append(name)
    return out


def _plain(array: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Decode dictionaries: the IPC file format cannot replace a dictionary between batches."""
    if pa.types.is_dictionary(array.type):
        return array.cast(array.type.value_type)
    return array


def _normalise(table: pa.Table) -> pa.Table:
    names = _unique_names(table.column_names)
    return pa.table([_plain(c) for c in table.columns], names=names)


def frame_source(frame: pd.DataFrame) -> Source:
    """Batches of ``frame``; a meaningful (named or non-range) index becomes leading columns.

    Each column is stored the way ``columns.choose`` decides on the first slice (as it is, as
    decimals or as text); a column that cannot be stored at all is left out and named in
    ``dropped``. A later slice that no longer fits its column's type raises ``DatasetError``.
    """
    import pandas as pd

    keep_index = not isinstance(frame.index, pd.RangeIndex) or any(n is not None for n in frame.index.names)

    def flat(chunk: pd.DataFrame) -> pd.DataFrame:
        return chunk.reset_index() if keep_index else chunk

    head_chunk = flat(frame.iloc[:FRAME_CHUNK_ROWS])
    names = _unique_names(list(head_chunk.columns))
    storages: list[Storage] = []
    head_arrays: list[pa.Array] = []
    dropped: list[str] = []
    for i, name in enumerate(names):
        storage, array = choose(head_chunk.iloc[:, i])
        storages.append(storage)
        if array is None:
            dropped.append(name)
        else:
            head_arrays.append(_plain(array))
    kept = [i for i, s in enumerate(storages) if s is not Storage.DROP]
    head = pa.table(head_arrays, names=[names[i] for i in kept])
    schema = head.schema

    def convert(chunk: pd.DataFrame) -> pa.Table:
        arrays = [_plain(convert_column(chunk.iloc[:, i], storages[i])) for i in kept]
        return pa.table(arrays, names=[names[i] for i in kept])

    def batches() -> Iterator[pa.RecordBatch]:
        yield from head.to_batches()
        for start in range(FRAME_CHUNK_ROWS, len(frame), FRAME_CHUNK_ROWS):
            try:
                table = convert(flat(frame.iloc[start : start + FRAME_CHUNK_ROWS]))
                if table.schema != schema:
                    table = table.cast(schema)
            except CONVERSION_ERRORS as exc:
                raise DatasetError(
                    "a column changes type part-way through the table; convert it with astype first"
                ) from exc
            yield from table.to_batches()

    return Source(schema, batches(), tuple(dropped))


def _table_source(table: pa.Table) -> Source:
    table = _normalise(table)
    return Source(table.schema, iter(table.to_batches()))


def file_opener(path: Path) -> Callable[[], Source] | None:
    """What opens a tabular file when a store is ready to read it, ``None`` if its extension is not a
    table format (so a store can refuse a file before doing any work)."""
    if path.suffix.lower() not in TABULAR_SUFFIXES:
        return None

    def open_source() -> Source:
        source = file_source(path)
        assert source is not None  # the suffix was checked above
        return source

    return open_source


def file_source(path: Path) -> Source | None:
    """Schema and batches of a tabular file, ``None`` if its extension is not a table format.

    Raises ``DatasetError`` with a short reason when the file cannot be parsed.
    """
    suffix = path.suffix.lower()
    if suffix not in TABULAR_SUFFIXES:
        return None
    try:
        return _open(path, suffix)
    except DatasetError:
        raise
    except Exception as exc:  # parsers raise many types; the user needs the file name and the gist
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise DatasetError(f"{path.name} could not be read as a table: {reason}") from exc


def _open(path: Path, suffix: str) -> Source:
    if suffix in (".csv", ".tsv"):
        return _read_delimited(path, "\t" if suffix == ".tsv" else ",")
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        schema = _normalise(pf.schema_arrow.empty_table()).schema

        def parquet_batches() -> Iterator[pa.RecordBatch]:
            for batch in pf.iter_batches(batch_size=65_536):
                yield from _normalise(pa.Table.from_batches([batch])).cast(schema).to_batches()

        return Source(schema, parquet_batches())
    if suffix in (".jsonl", ".ndjson"):
        import pyarrow.json as pj

        try:
            return _table_source(pj.read_json(path))
        except pa.ArrowInvalid:  # e.g. a field changes type between lines; pandas copes
            import pandas as pd

            return frame_source(pd.read_json(path, lines=True))
    if suffix == ".xlsx":
        import pandas as pd

        return frame_source(pd.read_excel(path, engine="openpyxl"))
    return _table_source(_read_arrow(path))


def _read_delimited(path: Path, delimiter: str) -> Source:
    import pyarrow.csv as pcsv

    try:
        table = pcsv.read_csv(
            path,
            read_options=pcsv.ReadOptions(block_size=16 << 20),
            parse_options=pcsv.ParseOptions(delimiter=delimiter),
        )
        return _table_source(_drop_written_index(table))
    except pa.ArrowInvalid as exc:
        # pyarrow fixes a column's type from the first block; pandas handles late surprises
        # (a text value deep in a numeric column) and ragged lines more forgivingly.
        import pandas as pd

        try:
            frame = pd.read_csv(path, sep=delimiter, low_memory=False)
        except Exception:
            raise exc from None
        return frame_source(frame)


def _drop_written_index(table: pa.Table) -> pa.Table:
    """Drop the unnamed 0..n-1 first column that ``DataFrame.to_csv`` writes for a default index.

    It is pandas bookkeeping, not data: without this, ``df.to_csv("out.csv")`` would come back with
    one column more than ``df`` has.
    """
    if table.num_columns < 2 or table.column_names[0] != "" or not pa.types.is_integer(table.schema.field(0).type):
        return table
    import numpy as np

    first = table.column(0)
    if first.null_count or not np.array_equal(first.to_numpy(), np.arange(len(first))):
        return table
    return table.remove_column(0)


def _read_arrow(path: Path) -> pa.Table:
    import pyarrow.feather as feather

    try:
        return feather.read_table(path)  # Arrow IPC file / Feather v2 and Feather v1
    except pa.ArrowInvalid:
        with pa.OSFile(str(path), "rb") as f:
            return pa.ipc.open_stream(f).read_all()
