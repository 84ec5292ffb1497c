"""One dataset on disk: an Arrow IPC file of fixed-size record batches, plus persisted sort orders.

Why this layout (measured with ``python -m benchmarks.datasets`` on 10M rows x 8 columns, 2 cores):
the IPC *file* format has a footer listing every batch, so row ``r`` lives in batch ``r // BATCH_ROWS``
and a page is one ``get_batch`` (two at a boundary) followed by a slice: cost is flat in page number
and dataset size. A file registered by the local store also has a layout file
(``bot.datasets.layout``): with it a page reads only the bytes of its rows, not the footer and the
whole batch (on a cold file, 0.7-1.7 ms of reads became ~0.4 ms).

No compression, read with positional file reads (not a memory map). A sorted page touches up to
``size`` batches spread over the file, and a compressed batch must be decompressed whole: with lz4 a
20-row sorted page took 8-10 ms, uncompressed 2.6-3.1 ms. A memory map made every touched batch count
as process memory (1,000 random pages added 289 MB of RSS); reading just the batch with ``OSFile``
adds under 1 MB. The cost is disk: 693 MB instead of 477 MB for the benchmark table, for 6 hours.
Whole columns (a sort or a chart reads every value once, then lets go) are the other way round: views
of a memory map cost no copy and no new process memory.

Sort orders are permutations (row numbers in ascending order, missing values last) saved as ``.npy``
beside the data and memory-mapped, so a sorted page reads ``size`` entries of it and those rows.
Descending order is derived once from the ascending one (its runs of equal values in reverse, each
still in row order) and saved beside it; missing values are last in both directions. Until a
column's order exists, the first pages (``TOP_ROWS``) are answered from the few batches that can hold
them (``bot.datasets.extremes``) or, without the batches' extremes, by partial selection over the
column (``top_rows``): exactly the rows the full order will hold there, either way.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bot.datasets import gather, packedsort
from bot.datasets.layout import Layout, layout_path, read_rows
from bot.datasets.stringsort import string_order

BATCH_ROWS = 8192
COMPRESSION: str | None = None
DATA_FILE = "data.arrow"


class BatchWriter:
    """Writes record batches of any size to an IPC file as exactly ``BATCH_ROWS``-row batches.

    Batches are streamed: only the rows not yet written (less than one output batch beyond the
    incoming batch) are held. ``close`` returns the row count.
    """

    def __init__(self, path: Path, schema: pa.Schema, compression: str | None = COMPRESSION) -> None:
        self.schema = schema
        self._sink = pa.OSFile(str(path), "wb")
        options = pa.ipc.IpcWriteOptions(compression=compression)
        self._writer = pa.ipc.new_file(self._sink, schema, options=options)
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        while self._pending_rows >= BATCH_ROWS:
            self._flush(BATCH_ROWS)

    def _flush(self, n: int) -> None:
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        head = table.slice(0, n).combine_chunks()
        for batch in head.to_batches():
            self._writer.write_batch(batch)
        rest = table.slice(n)
        self._pending = rest.to_batches() if rest.num_rows else []
        self._pending_rows -= n
        self.rows += n

    def close(self) -> int:
        if self._pending_rows:
            self._flush(self._pending_rows)
        self._writer.close()
        self._sink.close()
        return self.rows

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            self._sink.close()


def write_batches(
    path: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch], compression: str | None = COMPRESSION
) -> int:
    """Stream ``batches`` to ``path`` (written under a temporary name, then renamed); return rows."""
    tmp = path.with_name(path.name + ".part")
    writer = BatchWriter(tmp, schema, compression)
    try:
        for batch in batches:
            writer.write(batch)
        rows = writer.close()
    except BaseException:
        writer.abort()
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return rows


class SortOrder:
    """A persisted permutation of one column in one direction: row numbers with the ``valid`` rows
    first (stable: equal values keep row order, in both directions), then the missing ones (null,
    NaN) in row order, exactly as a stable ``sort_values(..., na_position="last")``."""

    def __init__(self, perm: np.ndarray, valid: int) -> None:
        self.perm = perm
        self.valid = valid

    def positions(self, start: int, stop: int) -> np.ndarray:
        """Row numbers at sorted positions ``start:stop``."""
        return np.asarray(self.perm[start:stop])

    @staticmethod
    def path(folder: Path, column_index: int, descending: bool = False) -> Path:
        return folder / f"sort-{column_index}{'-desc' if descending else ''}.npy"

    @classmethod
    def load(cls, folder: Path, column_index: int, descending: bool = False) -> SortOrder | None:
        path = cls.path(folder, column_index, descending)
        try:
            valid = json.loads(path.with_suffix(".json").read_text())["valid"]
            return cls(np.load(path, mmap_mode="r"), int(valid))
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def save(self, folder: Path, column_index: int, descending: bool = False) -> list[Path]:
        """Write the order; return the files written."""
        path = self.path(folder, column_index, descending)
        path.with_suffix(".json").write_text(json.dumps({"valid": self.valid}))
        tmp = path.with_name(path.stem + ".part.npy")
        np.save(tmp, self.perm)
        os.replace(tmp, path)  # the .npy appears last, so its presence means both are complete
        return [path, path.with_suffix(".json")]


def sortable(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """``column`` as one contiguous chunk of plain values (dictionaries decoded)."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    # One contiguous array: Arrow sorts a 1,221-chunk column ~20% slower (a sort per chunk plus merges).
    return pa.chunked_array([column.combine_chunks()], type=column.type)


def _missing(column: pa.ChunkedArray) -> int:
    missing = column.null_count
    if pa.types.is_floating(column.type):
        missing += int(pc.sum(pc.is_nan(column)).as_py() or 0)
    return int(missing)


def _stable_numbers(values: np.ndarray, packed_tried: bool = False) -> np.ndarray:
    """Stable ascending argsort of numbers without missing values.

    numpy's quicksort argsort is vectorised (AVX-512 / AVX2) and several times faster than a stable
    sort, but unstable: rows of equal values are then put back in row order, which is cheap while ties
    are few. Integers of a small range go to numpy's radix sort (stable, linear) instead.
    ``packed_tried``: ``_packed_order`` already found too many ties, so it is not tried again.
    """
    if values.dtype.kind in "iu" and len(values):
        lo, hi = int(values.min()), int(values.max())
        if hi - lo < 2**16:
            return np.argsort((values - lo).astype(np.uint16), kind="stable")
    if 1 < len(values) < 2**31 and not packed_tried:
        packed = packedsort.packed_order([values])
        if packed is not None:
            return packed
    perm = np.argsort(values, kind="quicksort")
    if len(perm) < 2**31:
        perm = perm.astype(np.int32)  # the gather below reads half the index bytes; saved as int32 anyway
    ordered = values[perm]
    tied = ordered[1:] == ordered[:-1]
    ties = int(np.count_nonzero(tied))
    if not ties:
        return perm
    if ties > packedsort.TIE_SHARE * len(values):
        return np.argsort(values, kind="stable")
    member = np.r_[tied, False] | np.r_[False, tied]
    run = np.cumsum(np.r_[True, ~tied])  # a run of equal values shares one number
    at = np.flatnonzero(member)
    perm[at] = perm[at][np.lexsort((perm[at], run[at]))]
    return perm


def _numbers(column: pa.ChunkedArray) -> np.ndarray:
    """The column's values as one numpy array (nulls as 0), copied once: no ``combine_chunks`` or
    ``fill_null`` pass over a column without nulls (each costs a full copy of 10M values)."""
    chunks = [pc.fill_null(c, 0) if c.null_count else c for c in column.chunks]
    arrays = [np.asarray(c.to_numpy(zero_copy_only=False)) for c in chunks]
    if not arrays:
        return np.zeros(0, column.type.to_pandas_dtype())
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _span(column: pa.ChunkedArray) -> int:
    """Largest minus smallest value of an integer column without nulls."""
    bounds = pc.min_max(column)
    return int(bounds["max"].as_py()) - int(bounds["min"].as_py())


def _numeric_order(column: pa.ChunkedArray) -> tuple[np.ndarray, int] | None:
    """Stable ascending order of a numeric, time or bool column with missing values last in row
    order, and how many values are not missing (known here without another pass over the column);
    ``None`` for other types."""
    t = column.type
    if pa.types.is_timestamp(t) or pa.types.is_date64(t) or pa.types.is_duration(t):
        column = column.cast(pa.int64())
    elif pa.types.is_date32(t):
        column = column.cast(pa.int32())
    elif pa.types.is_boolean(t):
        column = column.cast(pa.uint8())
    elif not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        return None
    if pa.types.is_float16(column.type):
        column = column.cast(pa.float32())
    if not column.null_count and 1 < len(column) < 2**31:
        # The common case (nothing missing) reads the chunks in place, no 400 MB copy at 50M rows.
        parts = [np.asarray(c.to_numpy(zero_copy_only=False)) for c in column.chunks]
        small_ints = pa.types.is_integer(column.type) and _span(column) < 2**16
        if not small_ints and not (pa.types.is_floating(column.type) and any(np.isnan(p).any() for p in parts)):
            packed = packedsort.packed_order(parts)
            order = packed if packed is not None else _stable_numbers(_numbers(column), packed_tried=True)
            return order, len(column)
    values = _numbers(column)
    valid = np.ones(len(values), bool) if not column.null_count else \
        pc.is_valid(column).to_numpy(zero_copy_only=False)
    if values.dtype.kind == "f":
        valid &= ~np.isnan(values)
    if valid.all():
        return _stable_numbers(values), len(values)
    rows = np.flatnonzero(valid)
    return np.concatenate([rows[_stable_numbers(values[rows])], np.flatnonzero(~valid)]), len(rows)


def compute_sort(column: pa.ChunkedArray) -> SortOrder:
    """Stable ascending order of ``column`` with nulls (and NaN) last, in row order."""
    numeric = _numeric_order(column)  # reads the chunks as they are: one copy, into numpy
    if numeric is not None:
        order, valid = numeric
    else:
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            order = string_order(column)  # reads the chunks in place: no copy of the strings
        else:
            column = sortable(column)
            order = pc.array_sort_indices(column, null_placement="at_end").to_numpy()
        valid = len(column) - _missing(column)
    dtype = np.int32 if len(column) < 2**31 else np.int64
    order = order.astype(dtype, copy=False)
    if pa.types.is_floating(column.type) and valid < len(order):
        order[valid:] = np.sort(order[valid:])  # Arrow puts NaN before nulls; both are just missing
    return SortOrder(order, valid)


def descending_sort(ascending: SortOrder, column: pa.ChunkedArray) -> SortOrder:
    """The stable descending order from the ascending one: its valid part backwards run by run of
    equal values, each run still in row order; missing values stay last."""
    valid = ascending.valid
    perm = np.asarray(ascending.perm)
    if valid < 2:
        return SortOrder(np.array(perm), valid)
    values = sortable(column).take(pa.array(perm[:valid]))
    starts = np.flatnonzero(np.r_[True, pc.not_equal(values[1:], values[:-1]).to_numpy(zero_copy_only=False)])
    ends = np.r_[starts[1:], valid]
    # Runs in reverse order, each copied forwards: position i of run r (from the end) reads start[r] + i.
    lengths = (ends - starts)[::-1]
    firsts = starts[::-1]
    offsets = np.repeat(firsts - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    index = offsets + np.arange(valid)
    return SortOrder(np.concatenate([perm[:valid][index], perm[valid:]]), valid)


#: Sorted pages within this many leading rows are answered (from batch extremes or by partial
#: selection) while the full permutation is still being computed.
TOP_ROWS = 1000


def top_rows(column: pa.ChunkedArray, start: int, stop: int, descending: bool) -> np.ndarray | None:
    """Row numbers at sorted positions ``start:stop`` (``stop <= TOP_ROWS``), identical to what the full
    ``SortOrder`` of that direction holds there, found by selecting the ``stop`` smallest (largest)
    values instead of sorting all; ``None`` when that cannot answer (the page reaches missing values,
    or the type cannot be selected): the caller waits for the full order."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)  # chunks stay as they are: selection needs no copy
    if stop > TOP_ROWS or stop > len(column) - _missing(column):
        return None
    direction = "descending" if descending else "ascending"
    within = pc.greater_equal if descending else pc.less_equal
    try:
        rows = _sampled_candidates(column, stop, descending)
        if rows is None:
            picked = pc.select_k_unstable(column, k=stop, sort_keys=[("", direction)])
            chosen = gather.take(column, np.asarray(picked))
            bound = pc.min(chosen) if descending else pc.max(chosen)
            # Every row tying with the bound is a candidate, so the stable sort below sees all ties.
            rows = _true_rows(within(column, bound))
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    order = pc.array_sort_indices(gather.take(column, rows), order=direction).to_numpy()
    return rows[order[start:stop]]


def _true_rows(mask: pa.ChunkedArray) -> np.ndarray:
    """Row numbers where ``mask`` is true (null as false), from Arrow's bitmap: no byte per row in
    numpy (50 MB of new memory for each first sorted page of 50M rows)."""
    return np.asarray(pc.indices_nonzero(pc.fill_null(mask, False))).astype(np.int64)


#: Rows sampled to guess a bound for the first sorted rows.
SAMPLE = 65_536


def _sampled_candidates(column: pa.ChunkedArray, stop: int, descending: bool) -> np.ndarray | None:
    """Rows holding (at least) the ``stop`` smallest (largest) values, every row tying with them
    included, found with one comparison pass instead of a selection over all values (which costs
    3-4x more on 10M strings): a bound is read off a random sample (a value that many more than
    ``stop`` rows should pass), and the rows within it are counted. ``None`` when the sample says
    nothing (small columns) or the guess let fewer than ``stop`` rows through: select instead."""
    n = len(column)
    if n <= 4 * SAMPLE:
        return None
    picks = np.random.default_rng(n).integers(0, n, SAMPLE)  # fixed seed: the same work every time
    sample = pc.drop_null(gather.take(column, picks))
    if pa.types.is_floating(sample.type):
        sample = sample.filter(pc.invert(pc.is_nan(sample)))
    # The r-th sampled value is about the (r * n / SAMPLE)-th of the column: aim at four times ``stop``.
    rank = max(4, -(-4 * stop * SAMPLE // n))
    if len(sample) <= rank:
        return None
    ordered = sample.take(pc.array_sort_indices(sample, order="descending" if descending else "ascending"))
    bound = ordered[rank]
    inside = (pc.greater_equal if descending else pc.less_equal)(column, bound)
    rows = _true_rows(inside)
    # Too few: the guess missed. Too many (a bound shared by many rows): selection tells the exact bound.
    return rows if stop <= len(rows) <= MAX_CANDIDATES else None


#: Above this many candidate rows from a sampled bound, selecting the exact bound is cheaper.
MAX_CANDIDATES = 100_000


class TableFile:
    """Random access to one IPC data file. Safe to share between threads."""

    def __init__(self, path: Path, expect: tuple[int, int] | None = None) -> None:
        """Open the data file at ``path``; ``expect`` is its field and batch counts when the caller
        knows them (from the dataset's metadata): the first page then reads its layout's header and
        its batch's record in one round."""
        self.path = path
        self._expect = expect
        self._source = pa.OSFile(str(path), "rb")  # positional reads: see the module docstring
        try:
            self._layout_fd: int | None = os.open(layout_path(path), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            self._layout_fd = None  # written before layouts existed, or of types they do not describe
        self._lock = threading.Lock()  # RecordBatchFileReader keeps per-read state
        # Both read lazily: a page of a file with a layout reads neither the footer nor a whole batch.
        self._reader: pa.ipc.RecordBatchFileReader | None = None
        self._layout: Layout | None = None
        self._offsets: dict[str, np.ndarray | None] = {}  # for values_at
        self._map: np.ndarray | None = None
        self._mapped_reader: pa.ipc.RecordBatchFileReader | None = None  # for batch_column

    def _arrow(self) -> pa.ipc.RecordBatchFileReader:
        """The IPC file reader (the footer is read on first use)."""
        with self._lock:
            if self._reader is None:
                self._reader = pa.ipc.open_file(self._source)
            return self._reader

    def _rows_layout(self, batch: int = 0) -> tuple[Layout, np.ndarray | None] | None:
        """The layout file's header, read on first use (with batch ``batch``'s record when the first
        use reads it); ``None`` without a usable layout file."""
        if self._layout_fd is None:
            return None
        with self._lock:
            if self._layout is not None:
                return self._layout, None
            found = Layout.read(self._layout_fd, self._expect, batch)
            if found is None:
                os.close(self._layout_fd)
                self._layout_fd = None
                return None
            self._layout = found[0]
            return found

    @property
    def schema(self) -> pa.Schema:
        found = self._rows_layout()
        return found[0].schema if found is not None else self._arrow().schema

    @property
    def num_batches(self) -> int:
        found = self._rows_layout()
        return found[0].batches if found is not None else self._arrow().num_record_batches

    def _batch(self, i: int) -> pa.RecordBatch:
        reader = self._arrow()
        with self._lock:
            return reader.get_batch(i)

    def slice(self, start: int, stop: int) -> pa.Table:
        """Rows ``start:stop`` (caller clamps to the row count): only their bytes when the file has a
        layout (``bot.datasets.layout``), else the batches they are in."""
        if stop <= start:
            return self.schema.empty_table()
        first, last = start // BATCH_ROWS, (stop - 1) // BATCH_ROWS
        found = self._rows_layout(first)
        layout_fd = self._layout_fd
        if found is not None and layout_fd is not None:
            layout, record = found
            fd = self._source.fileno()
            parts = []
            for i in range(first, last + 1):
                if record is None or i != first:
                    record = layout.record(layout_fd, i)
                parts.append(read_rows(layout, record, fd, max(start - i * BATCH_ROWS, 0),
                                       min(stop - i * BATCH_ROWS, BATCH_ROWS)))
            return pa.Table.from_batches(parts, schema=layout.schema)
        batches = [self._batch(i) for i in range(first, last + 1)]
        return pa.Table.from_batches(batches, schema=self.schema).slice(start - first * BATCH_ROWS, stop - start)

    def take(self, rows: np.ndarray) -> pa.Table:
        """Rows at ``rows`` in that order, decoding each touched batch once."""
        if len(rows) == 0:
            return self.schema.empty_table()
        rows = np.asarray(rows, dtype=np.int64)
        which = rows // BATCH_ROWS
        parts: list[pa.Table] = []
        order: list[np.ndarray] = []
        for b in np.unique(which):
            sel = np.nonzero(which == b)[0]
            batch = self._batch(int(b))
            parts.append(pa.Table.from_batches([batch.take(pa.array(rows[sel] - b * BATCH_ROWS))]))
            order.append(sel)
        table = pa.concat_tables(parts)
        # ``table`` is grouped by batch; put rows back into the requested order.
        inverse = np.empty(len(rows), dtype=np.int64)
        inverse[np.concatenate(order)] = np.arange(len(rows))
        return table.take(pa.array(inverse))

    def columns(self, names: Iterable[str]) -> pa.Table:
        """Whole columns (for sorts and charts), as views of a memory map of the file: no copy, and no
        new process memory (a 50M-row string column read into memory is ~850 MB of new pages, 0.3-10 s
        of page faults on the benchmark's VM). Every field is decoded, which reads only metadata: with
        ``included_fields`` Arrow copies the buffers out of the map. The map lives as long as a value
        read from it."""
        table = pa.ipc.open_file(pa.memory_map(str(self.path), "r")).read_all()
        return table.select(list(names))

    def column_batches(self, name: str, first: int, last: int) -> pa.ChunkedArray:
        """Column ``name`` of batches ``first:last``, reading only that column's buffers."""
        index = self.schema.get_field_index(name)
        options = pa.ipc.IpcReadOptions(included_fields=[index])
        with pa.ipc.open_file(self._source, options=options) as reader:
            chunks = [reader.get_batch(i).column(0) for i in range(first, last)]
        return pa.chunked_array(chunks, type=self.schema.field(index).type)

    def batch_column(self, name: str, i: int) -> pa.Array:
        """Column ``name`` of batch ``i``, a view of a memory map of the file (no copy; the map and its
        footer are read once per open file)."""
        with self._lock:
            if self._mapped_reader is None:
                self._mapped_reader = pa.ipc.open_file(pa.memory_map(str(self.path), "r"))
            return self._mapped_reader.get_batch(i).column(name)

    def values_at(self, name: str, rows: np.ndarray) -> pa.Array | None:
        """Values of column ``name`` at ``rows``, read from only the bytes they sit in (a chart's x at
        its 2,000 downsampled points: ~1 ms instead of reading 10M values). ``None`` unless the column
        is of fixed-width numbers, times or dates without nulls: the caller reads the column then."""
        field = self.schema.field(name)
        t = field.type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_temporal(t)):
            return None
        width = t.bit_width // 8
        starts = self._value_offsets(name)
        if starts is None or width < 1:
            return None
        rows = np.asarray(rows, dtype=np.int64)
        where = starts[rows // BATCH_ROWS] + (rows % BATCH_ROWS) * width
        raw = self._mapped()[where[:, None] + np.arange(width)]
        return pa.Array.from_buffers(t, len(rows), [None, pa.py_buffer(np.ascontiguousarray(raw).tobytes())])

    def _value_offsets(self, name: str) -> np.ndarray | None:
        """File offset of each batch's first value of ``name`` (found once per column through a memory
        map, where a batch's buffers are views of the file), or ``None`` when a batch holds nulls."""
        with self._lock:
            if name in self._offsets:
                return self._offsets[name]
        index = self.schema.get_field_index(name)
        width = self.schema.field(name).type.bit_width // 8
        with pa.memory_map(str(self.path), "r") as mapped:
            base = mapped.read_buffer(1).address
            # All fields: with ``included_fields`` Arrow copies the buffers out of the map.
            reader = pa.ipc.open_file(mapped)
            starts: np.ndarray | None = np.empty(reader.num_record_batches, np.int64)
            for i in range(reader.num_record_batches):
                column = reader.get_batch(i).column(index)
                if column.null_count or column.buffers()[1] is None:
                    starts = None
                    break
                start = column.buffers()[1].address - base + column.offset * width
                if not 0 <= start <= mapped.size() - len(column) * width:
                    starts = None  # a copy, not a view of the file (a compressed file): no offsets
                    break
                assert starts is not None
                starts[i] = start
        with self._lock:
            self._offsets[name] = starts
        return starts

    def _mapped(self) -> np.ndarray:
        with self._lock:
            if self._map is None:
                self._map = np.memmap(self.path, dtype=np.uint8, mode="r")
            return self._map

    def batches(self) -> Iterable[pa.RecordBatch]:
        for i in range(self.num_batches):
            yield self._batch(i)

    def close(self) -> None:
        self._source.close()
        with self._lock:
            if self._layout_fd is not None:
                os.close(self._layout_fd)
                self._layout_fd = None
        self._map = None  # numpy unmaps it when no value read from it is left
        self._mapped_reader = None  # likewise Arrow's map
