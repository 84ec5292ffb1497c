"""Where each column's buffers lie in each record batch of a data file, so a page reads only the
bytes of the rows it shows.

Without it a page opens the IPC file's footer (~30 KB for 10M rows) and reads its whole 8,192-row
batch (~570 KB for 8 columns) to show 20 rows: on a file out of the page cache that was 0.7-1.7 ms
of a cold page (``python -m benchmarks.datasets``). With it a page makes three rounds of small
positional reads, each round's reads issued together (``posix_fadvise(WILLNEED)`` first, so the
disk serves them in parallel): this file's header, schema and the batch's record (their places
follow from the field and batch counts, which the caller knows from the dataset's metadata), the
rows' values (bitmaps, fixed-width values, string offsets), then the rows' string bytes (asked for
in the previous round at their likely place).

The layout file (little-endian), written beside the data file at registration:

- header: ``MAGIC``, then ``uint64`` field count, batch count and schema length;
- per batch a record of ``int64``: its row count, then per field four numbers: the file offset of
  its validity bitmap (``-1`` when it has no nulls), of its values (fixed-width values, a bitmap
  for booleans, the offsets of strings), of its string bytes (``-1`` for fixed width) and their length;
- the schema (IPC-serialised).

Only flat types have one (numbers, booleans, times, dates, decimals, strings and binary, in an
uncompressed file); for any other file ``write_layout`` writes nothing and readers use the IPC
footer as before.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

MAGIC = b"DTLAYOU1"
_HEADER = struct.Struct("<8sQQQ")
#: Bytes read around the likely place of a page's strings.
NEAR = 4096
_SLOTS = 4  # per field: validity offset, values offset, string bytes offset, string bytes length
_NO_BUFFER = -1


def layout_path(data: Path) -> Path:
    """The layout file of ``data`` (``data.arrow`` -> ``data.layout``)."""
    return data.with_suffix(".layout")


def _kind(t: pa.DataType) -> str | None:
    """How values of ``t`` are laid out: ``bits``, ``fixed``, ``var32`` / ``var64`` (offsets of that
    width plus bytes), or ``None`` when the layout file does not describe them."""
    if pa.types.is_boolean(t):
        return "bits"
    if (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_timestamp(t)
            or pa.types.is_date(t) or pa.types.is_time(t) or pa.types.is_duration(t)):
        return "fixed"
    if pa.types.is_string(t) or pa.types.is_binary(t):
        return "var32"
    if pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        return "var64"
    return None


def write_layout(data: Path) -> Path | None:
    """Write the layout file of the IPC file ``data``; return it, or ``None`` when the file cannot be
    described (a type other than the flat ones, or compressed buffers)."""
    schema_bytes = b""
    with pa.memory_map(str(data), "r") as mapped:
        size = mapped.size()
        # A batch read through a memory map is views of the file: its buffers' addresses minus the
        # map's give their file offsets (what ``TableFile.values_at`` does for one column).
        base = mapped.read_buffer(1).address
        reader = pa.ipc.open_file(mapped)
        schema = reader.schema
        if any(_kind(f.type) is None for f in schema):
            return None
        schema_bytes = schema.serialize().to_pybytes()
        records = np.full((reader.num_record_batches, 1 + _SLOTS * len(schema)), _NO_BUFFER, np.int64)
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            records[i, 0] = batch.num_rows
            for j, column in enumerate(batch.columns):
                if column.offset:
                    return None
                slots = records[i, 1 + _SLOTS * j : 1 + _SLOTS * (j + 1)]
                for k, buffer in enumerate(column.buffers()):
                    if buffer is None or not buffer.size:
                        continue  # absent, or empty (no string bytes at all): nothing to read there
                    offset = buffer.address - base
                    if not 0 <= offset <= size - buffer.size:
                        return None  # a copy, not a view of the file (compressed): nothing to point at
                    if k == 0:
                        if column.null_count:
                            slots[0] = offset
                    elif k == 1:
                        slots[1] = offset
                    else:
                        slots[2], slots[3] = offset, buffer.size
                if slots[1] == _NO_BUFFER and len(column):
                    return None
    out = layout_path(data)
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as f:
        f.write(_HEADER.pack(MAGIC, len(schema), len(records), len(schema_bytes)))
        f.write(records.astype("<i8").tobytes())
        f.write(schema_bytes)
    os.replace(tmp, out)
    return out


def _record_bytes(fields: int) -> int:
    return 8 * (1 + _SLOTS * fields)


@dataclass(frozen=True)
class Layout:
    """The header of an open layout file: the schema, the kind of each field, the batch count."""

    schema: pa.Schema
    kinds: tuple[str, ...]
    batches: int

    def record(self, fd: int, batch: int) -> np.ndarray:
        """Batch ``batch``'s record: its row count, then four numbers per field."""
        size = _record_bytes(len(self.kinds))
        return np.frombuffer(os.pread(fd, size, _HEADER.size + batch * size), "<i8")

    @classmethod
    def read(cls, fd: int, expect: tuple[int, int] | None = None,
             batch: int = 0) -> tuple[Layout, np.ndarray | None] | None:
        """The header of the layout file open at ``fd`` (``None`` if it is not one) and, when
        ``expect`` (field and batch counts) says where things are, batch ``batch``'s record, read in
        the same round as the header."""
        size = os.fstat(fd).st_size
        record: bytes | None = None
        if expect is not None and 0 <= batch < expect[1]:
            fields, batches = expect
            step = _record_bytes(fields)
            schema_at = _HEADER.size + batches * step
            head, record, schema_bytes = _read_all(fd, [(0, _HEADER.size), (_HEADER.size + batch * step, step),
                                                        (schema_at, max(0, size - schema_at))], exact=False)
        else:
            head = os.pread(fd, _HEADER.size, 0)
        if len(head) < _HEADER.size:
            return None
        magic, fields, batches, schema_len = _HEADER.unpack_from(head)
        schema_at = _HEADER.size + batches * _record_bytes(fields)
        if magic != MAGIC or schema_at + schema_len != size:
            return None
        if expect != (fields, batches):
            record = None
            schema_bytes = os.pread(fd, schema_len, schema_at)
        schema = pa.ipc.read_schema(pa.py_buffer(schema_bytes))
        kinds = tuple(_kind(f.type) for f in schema)
        if len(schema) != fields or any(k is None for k in kinds):
            return None
        layout = cls(schema, kinds, batches)  # type: ignore[arg-type]
        return layout, None if record is None else np.frombuffer(record, "<i8")


def _read_all(fd: int, ranges: list[tuple[int, int]], exact: bool = True) -> list[bytes]:
    """The bytes of each ``(offset, length)`` of ``fd``, asking the kernel for all of them before
    waiting for any (on a cold file the reads then overlap instead of queueing one by one).
    ``exact``: ``OSError`` unless every range was there in full."""
    if len(ranges) > 1 and hasattr(os, "posix_fadvise"):
        for offset, length in ranges:
            if length:
                os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)
    got = [os.pread(fd, length, offset) if length else b"" for offset, length in ranges]
    if exact and any(len(g) != length for g, (_, length) in zip(got, ranges, strict=True)):
        raise OSError("a data file is shorter than its layout says")  # never build arrays past the bytes read
    return got


def read_rows(layout: Layout, record: np.ndarray, data_fd: int, start: int, stop: int) -> pa.RecordBatch:
    """Rows ``start:stop`` (``0 <= start < stop <=`` its rows) of the batch whose ``record`` is given,
    reading only their bytes: the same values, types and nulls as the batch's slice."""
    # Reads begin on a whole byte of bitmap: at a row that is a multiple of 8, the array's offset
    # then says where the page starts (bitmaps cannot be cut in the middle of a byte).
    first = start - start % 8
    length = stop - first
    wanted: list[tuple[int, int]] = []
    hints: list[tuple[int, int]] = []
    for j, (field, kind) in enumerate(zip(layout.schema, layout.kinds, strict=True)):
        validity, values, data, data_len = (int(v) for v in record[1 + _SLOTS * j : 1 + _SLOTS * (j + 1)])
        bits = (validity + first // 8, -(-stop // 8) - first // 8) if validity != _NO_BUFFER else (0, 0)
        if kind == "bits":
            main = (values + first // 8, -(-stop // 8) - first // 8)
        elif kind == "fixed":
            width = field.type.bit_width // 8
            main = (values + first * width, length * width)
        else:
            width = 4 if kind == "var32" else 8
            main = (values + first * width, (length + 1) * width)
            # Where the rows' strings probably lie (bytes in proportion to rows), so the kernel can
            # fetch them with this round; the next round reads the exact range.
            rows = int(record[0])
            if data != _NO_BUFFER and data_len > 0 and rows > 0:
                lo, hi = data_len * first // rows, -(-data_len * stop // rows)
                hints.append((data + max(0, lo - NEAR), hi - lo + 2 * NEAR))
        wanted += [bits, main]
    if hasattr(os, "posix_fadvise"):
        for offset, size in hints:
            os.posix_fadvise(data_fd, offset, size, os.POSIX_FADV_WILLNEED)
    got = _read_all(data_fd, wanted)
    strings: list[tuple[int, int]] = []
    offsets: dict[int, np.ndarray] = {}
    for j, kind in enumerate(layout.kinds):
        if kind.startswith("var"):
            at = np.frombuffer(got[2 * j + 1], "<i4" if kind == "var32" else "<i8")
            offsets[j] = at
            data = int(record[1 + _SLOTS * j + 2])
            strings.append((data + int(at[0]), int(at[-1] - at[0])))
    texts = iter(_read_all(data_fd, strings))
    arrays = []
    for j, (field, kind) in enumerate(zip(layout.schema, layout.kinds, strict=True)):
        bitmap = pa.py_buffer(got[2 * j]) if got[2 * j] else None
        if kind.startswith("var"):
            at = offsets[j]
            buffers = [bitmap, pa.py_buffer((at - at[0]).tobytes()), pa.py_buffer(next(texts))]
        else:
            buffers = [bitmap, pa.py_buffer(got[2 * j + 1])]
        array = pa.Array.from_buffers(field.type, length, buffers, null_count=-1 if bitmap else 0)
        arrays.append(array.slice(start - first))
    return pa.RecordBatch.from_arrays(arrays, schema=layout.schema)
