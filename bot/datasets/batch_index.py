"""Where each record batch of a data file lies, so a page can be read with one ranged GET.

The data file is the same Arrow IPC file as the local store writes (``bot.datasets.tablefile``); this
index is written beside it: the schema and the byte range of every batch. With it a replica reads
batch ``i`` by fetching exactly its bytes (batches ``i`` and ``i+1`` are adjacent, so a page across
a boundary is still one request) and decoding the one message, without fetching the file's footer.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from bot.datasets.tablefile import BatchWriter

#: The IPC file format starts with this magic (padded to 8 bytes) before the first message.
FILE_MAGIC_BYTES = 8


@dataclass(frozen=True)
class BatchIndex:
    """The schema of a data file and ``(start, end)`` byte offsets of each of its batches."""

    schema: pa.Schema
    ranges: tuple[tuple[int, int], ...]
    size: int  # bytes of the whole file

    def span(self, first: int, last: int) -> tuple[int, int]:
        """The bytes holding batches ``first..last`` (inclusive): one contiguous range."""
        return self.ranges[first][0], self.ranges[last][1]

    def to_json(self) -> str:
        return json.dumps({
            "schema": base64.b64encode(self.schema.serialize().to_pybytes()).decode(),
            "ranges": self.ranges, "size": self.size,
        })

    @classmethod
    def from_json(cls, text: str | bytes) -> BatchIndex:
        d = json.loads(text)
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(d["schema"])))
        return cls(schema, tuple((int(a), int(b)) for a, b in d["ranges"]), int(d["size"]))


def decode_batches(index: BatchIndex, first: int, data: bytes) -> list[pa.RecordBatch]:
    """The record batches in ``data``, the bytes of ``index.span(first, ...)``."""
    buffer = pa.py_buffer(data)
    if index.ranges[first][0] == 0:
        buffer = buffer.slice(FILE_MAGIC_BYTES)  # batch 0's range begins with the magic and the schema
    reader = pa.ipc.MessageReader.open_stream(buffer)
    batches = []
    while True:
        try:
            message = reader.read_next_message()
        except StopIteration:
            break
        if message is None:
            break
        if message.type == "record batch":
            batches.append(pa.ipc.read_record_batch(message, index.schema))
    return batches


class IndexedBatchWriter(BatchWriter):
    """``BatchWriter`` that also records where each batch ends (the IPC writer writes straight to
    the file, so the file position after each batch is its end)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        super().__init__(path, schema)
        self.ends: list[int] = []

    def _flush(self, n: int) -> None:
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        head = table.slice(0, n).combine_chunks()
        for batch in head.to_batches():
            self._writer.write_batch(batch)
            self.ends.append(self._sink.tell())
        rest = table.slice(n)
        self._pending = rest.to_batches() if rest.num_rows else []
        self._pending_rows -= n
        self.rows += n

    def index(self, path: Path) -> BatchIndex:
        """The index of the closed file at ``path``."""
        starts = [0, *self.ends[:-1]]
        return BatchIndex(self.schema, tuple(zip(starts, self.ends, strict=True)), path.stat().st_size)
