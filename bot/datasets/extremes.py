"""The smallest and largest value of every batch of every sortable column, so the first sorted pages
read the few batches that can hold them instead of the whole column.

The first ``stop`` rows of an ascending order all lie in batches whose minimum is at most the
``stop``-th smallest of the batch minima (``stop`` batches each hold a value that small), and for
most data those are about ``stop`` batches: the first page of 50M rows reads a few dozen of its 6,104
batches instead of comparing 50M values (0.4-0.6 s). Batches are read in order of their minimum, the
bound tightening to the ``stop``-th smallest value read so far, until the next batch's minimum is
past it (sorted data: one batch). Descending orders use the maxima.

Missing values (nulls, NaN) are in no batch's extremes and never among the first rows (they sort
last). Computed in the background after registration and kept as ``extremes.arrow`` beside the data
(the local store, with the chart summaries; S3, where every replica finds them and reads the batches by
range). A dataset without them selects its first sorted rows from the whole column
(``tablefile.top_rows``), or, on S3, waits for the full order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bot.datasets import summaries
from bot.datasets.tablefile import TableFile

EXTREMES_FILE = "extremes.arrow"


def plain(values: pa.Array) -> pa.Array:
    """``values`` with dictionaries decoded: what is compared and sorted."""
    return values.cast(values.type.value_type) if pa.types.is_dictionary(values.type) else values


def _field(name: str, descending: bool) -> str:
    return f"{'max' if descending else 'min'}:{name}"


def _value(bound: pa.Scalar) -> pa.Scalar | None:
    """A batch's minimum or maximum as Arrow gives it; ``None`` when the batch has no value (Arrow's
    ``min_max`` skips NaN unless every value is NaN)."""
    if not bound.is_valid or (pa.types.is_floating(bound.type) and math.isnan(bound.as_py())):
        return None
    return bound


def summarise(batches: Callable[[str], Iterable[pa.Array]], columns: Sequence[str]) -> pa.Table:
    """One row per batch: the minimum (``min:<name>``) and maximum (``max:<name>``) of each of
    ``columns`` in it, null for a batch without a value there. ``batches(name)`` gives a column's
    batches in order (read one column at a time, a few batches at a time, by the caller). A column
    of a type Arrow takes no minimum of is left out: its first sorted pages come another way."""
    found: dict[str, pa.Array] = {}
    for name in columns:
        lows: list[pa.Scalar | None] = []
        highs: list[pa.Scalar | None] = []
        kind: pa.DataType = pa.null()
        try:
            for part in batches(name):
                values = plain(part)
                kind = values.type
                bounds = pc.min_max(values)
                lows.append(_value(bounds["min"]))
                highs.append(_value(bounds["max"]))
        except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
            continue
        found[_field(name, False)] = pa.array(lows, type=kind)
        found[_field(name, True)] = pa.array(highs, type=kind)
    return pa.table(found)


def of_file(table: TableFile, columns: Sequence[str]) -> pa.Table:
    """``summarise`` of ``columns`` of a data file, read one column at a time, a group of batches at a
    time (``summaries.groups_of``)."""
    return summarise(lambda name: (b for group in summaries.groups_of(table, name) for b in group.chunks), columns)


def to_bytes(table: pa.Table) -> bytes:
    """``table`` (from ``summarise``) as the bytes of an Arrow IPC file."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def from_bytes(data: bytes) -> pa.Table | None:
    """The table ``to_bytes`` wrote; ``None`` for bytes that are not one."""
    try:
        return pa.ipc.open_file(pa.BufferReader(data)).read_all()
    except (pa.ArrowInvalid, OSError):
        return None


def save(folder: Path, table: pa.Table) -> Path:
    """Write ``table`` (from ``summarise``) beside the data: complete or absent, never half a file."""
    path = folder / EXTREMES_FILE
    tmp = folder / (EXTREMES_FILE + ".part")
    tmp.write_bytes(to_bytes(table))
    tmp.replace(path)
    return path


def load(folder: Path) -> pa.Table | None:
    """The saved extremes of a dataset, or ``None`` when it has none."""
    try:
        return from_bytes((folder / EXTREMES_FILE).read_bytes())
    except FileNotFoundError:
        return None


def bounds_of(table: pa.Table | None, name: str, descending: bool) -> pa.Array | None:
    """Each batch's minimum of column ``name`` (maximum when ``descending``), or ``None`` without
    extremes or without that column in them."""
    key = _field(name, descending)
    return table.column(key).combine_chunks() if table is not None and key in table.column_names else None


def first_rows(read: Callable[[list[int]], Sequence[pa.Array]], bounds: pa.Array, start: int, stop: int,
               descending: bool, batch_rows: int, most: int | None = None, first_round: int = 1) -> np.ndarray | None:
    """Row numbers at sorted positions ``start:stop`` of the stable order (ascending, or descending
    when ``descending``; ties in row order), exactly what the column's full ``SortOrder`` holds there,
    read from the batches that can hold them. ``bounds``: each batch's minimum (maximum when
    descending); ``read(batches)``: the column's values in each of ``batches`` (a round of them at
    once), batch ``i``'s first row being ``i * batch_rows``; rounds of ``first_round`` batches, then
    twice as many each time (a store reading over the network starts larger: fewer round trips).
    ``None`` when fewer than ``stop`` batches hold a value, or when more than ``most`` batches would
    be read: the caller finds the rows another way."""
    direction = "descending" if descending else "ascending"
    within = pc.greater_equal if descending else pc.less_equal
    known = np.flatnonzero(pc.is_valid(bounds).to_numpy(zero_copy_only=False))
    if stop <= 0 or len(known) < stop:
        return None
    # Batches by their bound, nearest first (ties by batch number: the same reads every time).
    by_bound = known[pc.sort_indices(pa.table({"b": bounds.take(pa.array(known)), "i": known}),
                                     sort_keys=[("b", direction), ("i", "ascending")]).to_numpy()]
    ordered = bounds.take(pa.array(by_bound))

    def reach(limit: pa.Scalar) -> int:
        """How many batches, nearest first, can hold a value within ``limit``."""
        return int(pc.sum(within(ordered, limit)).as_py() or 0)

    # A value ``stop`` rows reach (one in each of the ``stop`` nearest batches): it bounds the answer.
    limit = ordered[stop - 1]
    end = reach(limit)
    values: list[pa.Array] = []
    rows: list[np.ndarray] = []
    held = at = 0
    step = max(1, first_round)
    while at < end:
        if most is not None and min(end, at + step) > most:
            return None
        ids = by_bound[at : min(end, at + step)].tolist()
        for i, got in zip(ids, read(ids), strict=True):
            part = plain(got)
            picked = np.flatnonzero(pc.fill_null(within(part, limit), False).to_numpy(zero_copy_only=False))
            if len(picked):
                values.append(part.take(pa.array(picked)))
                rows.append(picked + i * batch_rows)
                held += len(picked)
        at = min(end, at + step)
        step *= 2  # the bound tightened between rounds
        if held >= stop and at < end:
            # The ``stop``-th nearest value read so far: ``stop`` rows reach it.
            seen = pa.concat_arrays(values)
            nearest = seen.take(pc.select_k_unstable(seen, k=stop, sort_keys=[("", direction)]))
            limit = (pc.min if descending else pc.max)(nearest)
            end = reach(limit)
    table = pa.table({"v": pa.concat_arrays(values), "r": np.concatenate(rows)})
    table = table.filter(within(table.column("v"), limit))
    order = pc.sort_indices(table, sort_keys=[("v", direction), ("r", "ascending")])
    return np.asarray(table.column("r").to_numpy()[order.to_numpy()[start:stop]], dtype=np.int64)
