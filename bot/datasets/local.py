"""``DatasetStore`` on the local disk: data under ``root/<id>/``, metadata in ``root/catalog.sqlite3``.

Each dataset is one Arrow IPC file of fixed 8,192-row batches (see ``bot.datasets.tablefile`` for
the measured reasons) plus its sort orders. Everything that touches data runs in a worker thread;
the event loop only awaits. Open files are kept in a small LRU so warm pages skip
the open; metadata is cached in memory once read (it never changes after registration).

Registration writes into ``root/.part-<id>/`` and renames it to ``root/<id>/`` once complete, then
adds the catalogue row: a process killed part-way leaves only a folder without a catalogue row,
which ``sweep`` removes once it is ``ORPHAN_AGE`` old. Folders are 0700 and files 0600.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from bot.datasets import aggregates, charts, extremes, summaries
from bot.datasets.catalog import Catalog, SqliteCatalog, meta_from_json, meta_to_json
from bot.datasets.exporting import check_format, export_batches, write_export
from bot.datasets.formatting import RowFormatter, logical_type
from bot.datasets.layout import write_layout
from bot.datasets.model import (
    ChartData,
    ChartSpec,
    Column,
    DatasetExpired,
    DatasetMeta,
    DatasetNotFound,
    ExportFormat,
    Page,
    PageWindow,
    SortSpec,
)
from bot.datasets.readers import Source, file_opener, frame_source
from bot.datasets.summaries import ColumnSummary
from bot.datasets.tablefile import (
    BATCH_ROWS,
    DATA_FILE,
    SortOrder,
    TableFile,
    compute_sort,
    descending_sort,
    top_rows,
    write_batches,
)
from bot.datasets.tablefile import (
    TOP_ROWS as TOP_ROWS_LIMIT,
)
from bot.private import make_private, private_dir

if TYPE_CHECKING:
    import pandas as pd

    from bot.messages import ThreadKey

log = logging.getLogger(__name__)

OPEN_FILES = 32
#: Metadata beside the data: a cold page reads this small file instead of opening the catalogue
#: (1-2 ms for SQLite) before any data. The catalogue stays the index (by thread, expiry, tombstones).
META_FILE = "meta.json"
#: Prefix of a dataset folder still being written.
PART_PREFIX = ".part-"
#: A dataset folder without a catalogue row this old is left over from a killed registration.
ORPHAN_AGE = timedelta(hours=1)


class LocalDatasetStore:
    """Datasets kept under ``root`` for ``retention`` after registration.

    ``catalog`` defaults to ``SqliteCatalog(root / "catalog.sqlite3")``. Call ``sweep`` periodically
    (the engine's timer) and ``aclose`` on shutdown.
    """

    def __init__(self, root: Path, retention: timedelta = timedelta(hours=6), catalog: Catalog | None = None) -> None:
        self.root = root
        self.retention = retention
        self.catalog: Catalog = catalog or SqliteCatalog(root / "catalog.sqlite3")
        self._meta: dict[str, DatasetMeta] = {}
        self._files: OrderedDict[str, tuple[TableFile, RowFormatter]] = OrderedDict()
        self._files_lock = threading.Lock()
        self._summary_cache: dict[str, dict[str, ColumnSummary]] = {}
        self._summarising: dict[str, asyncio.Future[Path]] = {}
        #: Sort orders by (dataset, column index, descending), and the ones being computed.
        self._orders: dict[tuple[str, int, bool], SortOrder] = {}
        self._sorting: dict[tuple[str, int, bool], asyncio.Future[SortOrder]] = {}
        #: New orders being written to their dataset's folder (served from memory meanwhile).
        self._saving: dict[tuple[str, int, bool], asyncio.Future[SortOrder | None]] = {}

    # registration -------------------------------------------------------------------------------

    async def register_frame(
        self, frame: pd.DataFrame, *, name: str, thread: ThreadKey, owner: str, source: str | None = None
    ) -> DatasetMeta:
        return await self._register(lambda: frame_source(frame), name=name, thread=thread, owner=owner, source=source)

    async def register_file(self, path: Path, *, name: str, thread: ThreadKey, owner: str) -> DatasetMeta | None:
        """Register a csv / tsv / parquet / jsonl / ndjson / xlsx / arrow / feather file.

        ``None`` if the extension is not tabular; ``DatasetError`` if the file cannot be parsed.
        """
        opener = file_opener(path)
        if opener is None:
            return None
        return await self._register(opener, name=name, thread=thread, owner=owner, source=path.name)

    async def _register(
        self, open_source: Callable[[], Source], *, name: str, thread: ThreadKey, owner: str, source: str | None
    ) -> DatasetMeta:
        dataset_id = secrets.token_urlsafe(16)
        folder = self.root / dataset_id

        def build() -> DatasetMeta:
            part = self.root / f"{PART_PREFIX}{dataset_id}"
            private_dir(part)
            try:
                src = open_source()
                rows = write_batches(part / DATA_FILE, src.schema, src.batches)
                make_private(part / DATA_FILE)
                layout = write_layout(part / DATA_FILE)  # so a page reads just its rows' bytes
                if layout is not None:
                    make_private(layout)
                created = datetime.now(UTC)
                meta = DatasetMeta(
                    id=dataset_id,
                    name=name,
                    columns=tuple(Column(f.name, logical_type(f.type)) for f in src.schema),
                    rows=rows,
                    thread=thread,
                    owner=owner,
                    created=created,
                    expires=created + self.retention,
                    source=source,
                    dropped=src.dropped,
                )
                (part / META_FILE).write_text(meta_to_json(meta))
                make_private(part / META_FILE)
                os.rename(part, folder)  # complete, or not there at all
                return meta
            except BaseException:
                shutil.rmtree(part, ignore_errors=True)
                raise

        meta = await asyncio.to_thread(build)
        rows = meta.rows
        try:
            await self.catalog.put(meta)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, folder, True)
            raise
        self._meta[dataset_id] = meta
        # What charts need is computed right after, off the turn's path (~0.5 s per numeric column
        # of 10M rows); a chart asked for meanwhile waits for it.
        self._summarising[dataset_id] = asyncio.ensure_future(asyncio.to_thread(_summarise, folder, meta))
        self._summarising[dataset_id].add_done_callback(_logged)
        log.info("dataset %s registered: %d rows x %d columns", dataset_id, rows, len(meta.columns))
        return meta

    # lookup -------------------------------------------------------------------------------------

    async def get(self, dataset_id: str) -> DatasetMeta:
        meta = self._meta.get(dataset_id)
        if meta is None:
            meta = await asyncio.to_thread(self._read_meta_file, dataset_id)
        if meta is None:
            meta = await self.catalog.get(dataset_id)
            if meta is None:
                stone = await self.catalog.tombstone(dataset_id)
                if stone is not None:
                    raise DatasetExpired(_expired_message(stone[0]))
                raise DatasetNotFound("That dataset does not exist (or the link is wrong).")
            self._meta[dataset_id] = meta
        if meta.expires <= datetime.now(UTC):
            raise DatasetExpired(_expired_message(meta.name))
        return meta

    def _read_meta_file(self, dataset_id: str) -> DatasetMeta | None:
        """The metadata saved beside the data, or ``None`` (swept, never existed, or a bad id)."""
        if not dataset_id or "/" in dataset_id or dataset_id.startswith("."):
            return None
        try:
            meta = meta_from_json((self.root / dataset_id / META_FILE).read_text())
        except (OSError, ValueError, KeyError, TypeError):
            return None  # the catalogue answers (and knows tombstones)
        return meta if meta.id == dataset_id else None

    async def list(self, thread: ThreadKey) -> Sequence[DatasetMeta]:
        now = datetime.now(UTC)
        return [m for m in await self.catalog.by_thread(thread) if m.expires > now]

    def _file(self, meta: DatasetMeta) -> TableFile:
        """The open data file (blocking on first open)."""
        return self._open(meta)[0]

    def _open(self, meta: DatasetMeta) -> tuple[TableFile, RowFormatter]:
        """The open data file and its row formatter (chosen once per file, not per page)."""
        with self._files_lock:
            entry = self._files.get(meta.id)
            if entry is not None:
                self._files.move_to_end(meta.id)
                return entry
        path = self.root / meta.id / DATA_FILE
        try:
            table = TableFile(path, expect=(len(meta.columns), -(-meta.rows // BATCH_ROWS)))
        except FileNotFoundError:
            raise DatasetExpired(_expired_message(meta.name)) from None
        entry = (table, RowFormatter(table.schema))
        with self._files_lock:
            self._files[meta.id] = entry
            while len(self._files) > OPEN_FILES:
                self._files.popitem(last=False)[1][0].close()
        return entry

    # pages --------------------------------------------------------------------------------------

    async def page(self, dataset_id: str, number: int, size: int, sort: SortSpec | None = None) -> Page:
        """Page ``number`` (1-based; past the end means the last page) of ``size`` rows."""
        meta = await self.get(dataset_id)
        w = PageWindow.of(meta.rows, number, size)
        if sort is None:
            rows = await asyncio.to_thread(self._read_rows, meta, w.start, w.stop, None)
        else:
            rows = await self._sorted_rows(meta, sort, w.start, w.stop)
        return Page(dataset=meta, number=w.number, size=w.size, start=w.start, rows=rows, sort=sort)

    def _read_rows(self, meta: DatasetMeta, start: int, stop: int,
                   positions: np.ndarray | None) -> tuple[tuple[str, ...], ...]:
        """Display rows ``start:stop`` in file order, or the rows at ``positions``."""
        table, format_rows = self._open(meta)
        return format_rows(table.slice(start, stop) if positions is None else table.take(positions))

    async def _sorted_rows(self, meta: DatasetMeta, sort: SortSpec, start: int,
                           stop: int) -> tuple[tuple[str, ...], ...]:
        """Rows at sorted positions ``start:stop``: from the column's full order when it exists; while it
        is being computed, the first pages come from the few batches that can hold them
        (``bot.datasets.extremes``), or by partial selection over the column when the dataset has no
        extremes yet (the same rows the order will hold, either way); later pages wait for the order."""
        index = meta.sortable_index(sort.column)
        order = self._orders.get((meta.id, index, sort.descending))
        if order is not None:  # the common case, without a task or a race
            return await asyncio.to_thread(self._read_rows, meta, 0, 0, order.positions(start, stop))
        name = meta.columns[index].name
        key = (meta.id, index, sort.descending)
        data: pa.ChunkedArray | None = None  # the column, when the first pages read it
        if stop <= TOP_ROWS_LIMIT and key not in self._sorting:
            # The first pages first, alone (on two cores the full sort would halve its speed): a saved
            # order if there is one, else the batches that can hold the rows, else partial selection;
            # the full order starts right after.
            def first_rows() -> tuple[SortOrder | None, tuple[tuple[str, ...], ...] | None, pa.ChunkedArray | None]:
                saved = SortOrder.load(self.root / meta.id, index, sort.descending)
                if saved is not None:
                    return saved, None, None
                positions = self._from_extremes(meta, name, start, stop, sort.descending)
                if positions is not None:
                    return None, self._read_rows(meta, 0, 0, positions), None
                data = self._file(meta).columns([name]).column(name)
                positions = top_rows(data, start, stop, sort.descending)
                return None, None if positions is None else self._read_rows(meta, 0, 0, positions), data

            saved, rows, data = await asyncio.to_thread(first_rows)
            if saved is not None:
                self._orders[key] = saved
                return await asyncio.to_thread(self._read_rows, meta, 0, 0, saved.positions(start, stop))
            if rows is not None:
                # The order goes on being computed (and saved) with nobody awaiting it now.
                # It reuses the column just read rather than reading 10M values again.
                asyncio.ensure_future(self._order(meta, name, sort.descending, data)).add_done_callback(_quietly)
                return rows
        order = await self._order(meta, name, sort.descending, data)
        return await asyncio.to_thread(self._read_rows, meta, 0, 0, order.positions(start, stop))

    def _from_extremes(self, meta: DatasetMeta, name: str, start: int, stop: int,
                       descending: bool) -> np.ndarray | None:
        """Rows at sorted positions ``start:stop`` from the few batches that can hold them
        (``bot.datasets.extremes``); ``None`` without extremes, or when they cannot answer (the
        caller selects over the column: a failure here is logged, never the page's)."""
        bounds = extremes.bounds_of(extremes.load(self.root / meta.id), name, descending)
        if bounds is None:
            return None
        file = self._file(meta)
        try:
            return extremes.first_rows(lambda ids: [file.batch_column(name, i) for i in ids], bounds, start, stop,
                                       descending, BATCH_ROWS)
        except pa.ArrowException:
            log.warning("first sorted rows of %s from its extremes failed; selecting over the column", meta.id,
                        exc_info=True)
            return None

    async def sort_order(self, dataset_id: str, column: str, descending: bool = False) -> None:
        """Wait until the full order of ``column`` is computed and saved (pages past the first ones
        wait for it anyway; a surface may show "sorting…" meanwhile)."""
        await self._order(await self.get(dataset_id), column, descending)

    async def _order(self, meta: DatasetMeta, column: str, descending: bool = False,
                     data: pa.ChunkedArray | None = None) -> SortOrder:
        """The order of ``column`` in one direction: from memory, from disk, or computed once (the
        descending one from the ascending one); ``data`` is the column's values when already read."""
        key = (meta.id, meta.sortable_index(column), descending)
        order = self._orders.get(key)
        if order is not None:
            return order
        pending = self._sorting.get(key)
        if pending is None:
            ascending = await self._order(meta, column, data=data) if descending else None
            pending = self._sorting.get(key)  # another caller may have started it meanwhile
            if pending is None:
                pending = asyncio.ensure_future(self._load_or_sort(meta, key, ascending, data))
                self._sorting[key] = pending
                pending.add_done_callback(lambda _: self._sorting.pop(key, None))
        return await asyncio.shield(pending)

    async def _load_or_sort(self, meta: DatasetMeta, key: tuple[str, int, bool], ascending: SortOrder | None,
                            data: pa.ChunkedArray | None = None) -> SortOrder:
        """The saved order, or a new one: ascending from the data, descending (when ``ascending`` is
        given) from it. A new order serves pages at once, from memory; it is written to the dataset's
        folder after (200 MB at 50M rows: up to a second of writing that no page needs to wait for),
        then served from the mapped file, which frees its memory."""
        _, index, descending = key

        def load_or_sort() -> tuple[SortOrder, bool]:
            order = SortOrder.load(self.root / meta.id, index, descending)
            if order is not None:
                return order, False
            name = meta.columns[index].name
            column = data if data is not None else self._file(meta).columns([name]).column(name)
            return (compute_sort(column) if ascending is None else descending_sort(ascending, column)), True

        order, new = await asyncio.to_thread(load_or_sort)
        self._orders[key] = order
        if new:
            saving = self._saving[key] = asyncio.ensure_future(asyncio.to_thread(self._save_order, meta.id, key, order))
            saving.add_done_callback(lambda done: self._saved(key, order, done))
        return order

    def _save_order(self, dataset_id: str, key: tuple[str, int, bool], order: SortOrder) -> SortOrder | None:
        """Write ``order`` into the dataset's folder; the saved copy (memory-mapped), or ``None`` when it
        could not be written (logged: the order in memory goes on serving, and a restart sorts again)."""
        folder = self.root / dataset_id
        _, index, descending = key
        try:
            for saved in order.save(folder, index, descending):
                make_private(saved)
        except OSError as exc:
            log.warning("could not save the sort order of dataset %s: %s", dataset_id, exc)
            return None
        return SortOrder.load(folder, index, descending)

    def _saved(self, key: tuple[str, int, bool], order: SortOrder, done: asyncio.Future[SortOrder | None]) -> None:
        """A save finished: serve the mapped copy instead of the array it was written from, unless the
        dataset was forgotten meanwhile."""
        if self._saving.get(key) is done:
            del self._saving[key]
        if done.cancelled():
            return
        failed = done.exception()
        if failed is not None:  # not a disk error (those are logged where they happen): a bug, said loudly
            log.error("saving the sort order of dataset %s failed", key[0], exc_info=failed)
            return
        mapped = done.result()
        if mapped is not None and self._orders.get(key) is order:
            self._orders[key] = mapped

    async def _writes_done(self, dataset_id: str | None = None) -> None:
        """Wait for the orders being saved (of ``dataset_id``, or all): nothing writes into a folder
        being removed, or after close."""
        pending = [f for k, f in self._saving.items() if dataset_id is None or k[0] == dataset_id]
        if pending:
            await asyncio.wait(pending)

    # charts and exports -------------------------------------------------------------------------

    async def chart(self, dataset_id: str, spec: ChartSpec, out: Path) -> Path:
        meta = await self.get(dataset_id)
        charts.validate(meta, spec)  # fail fast, before any data is read

        found = await self.summaries(dataset_id)

        def draw() -> Path:
            drawn = charts.render(self._file(meta), meta, spec, out, found)
            make_private(drawn)
            return drawn

        return await asyncio.to_thread(draw)

    async def chart_data(self, dataset_id: str, spec: ChartSpec) -> ChartData | None:
        meta = await self.get(dataset_id)
        charts.validate(meta, spec)
        if not aggregates.may_be_small(meta, spec):
            return None  # known not small before any data is read
        return await asyncio.to_thread(aggregates.small_aggregate, self._file(meta), meta, spec)

    async def summaries(self, dataset_id: str) -> Mapping[str, ColumnSummary]:
        """What charts need of the dataset's numeric columns (waiting for it right after registration);
        empty when there is none (charts then read the data)."""
        meta = await self.get(dataset_id)
        pending = self._summarising.get(meta.id)
        if pending is not None:
            await asyncio.wait({pending})  # a failure only means reading the data instead
        found = self._summary_cache.get(meta.id)
        if found is None:
            found = self._summary_cache[meta.id] = await asyncio.to_thread(summaries.load, self.root / meta.id)
        return found

    async def export(self, dataset_id: str, fmt: ExportFormat, out: Path, sort: SortSpec | None = None) -> Path:
        """Write the whole dataset to ``out`` as csv or parquet, batch by batch (in ``sort`` order if given)."""
        meta = await self.get(dataset_id)
        check_format(fmt)
        order = await self._order(meta, sort.column, sort.descending) if sort is not None else None

        def write() -> Path:
            table = self._file(meta)
            return write_export(export_batches(table, meta.rows, order), table.schema, fmt, out)

        return await asyncio.to_thread(write)

    # retention ----------------------------------------------------------------------------------

    async def sweep(self, now: datetime | None = None) -> int:
        """Remove expired datasets, and orphans (see ``sweep_orphans``); return how many."""
        now = _utc(now or datetime.now(UTC))
        removed = 0
        for meta in await self.catalog.expired(now):
            pending = self._summarising.get(meta.id)
            if pending is not None:  # still writing into the folder: removing it now would race
                await asyncio.wait({pending})
            await self._writes_done(meta.id)
            self._forget(meta.id)
            await asyncio.to_thread(shutil.rmtree, self.root / meta.id, True)
            await self.catalog.bury(meta, forget_before=now - max(self.retention, timedelta(days=7)))
            removed += 1
        if removed:
            log.info("swept %d expired datasets", removed)
        return removed + await self.sweep_orphans(now)

    async def sweep_orphans(self, now: datetime | None = None) -> int:
        """Remove dataset folders left by a killed registration: a ``.part-`` folder, or a folder with
        no catalogue row, untouched for ``ORPHAN_AGE`` (younger ones may still be registering)."""
        now = _utc(now or datetime.now(UTC))
        old = await asyncio.to_thread(_folders_older_than, self.root, (now - ORPHAN_AGE).timestamp())
        removed = 0
        for folder in old:
            if not folder.name.startswith(PART_PREFIX) and await self.catalog.get(folder.name) is not None:
                continue
            await asyncio.to_thread(shutil.rmtree, folder, True)
            removed += 1
        if removed:
            log.info("swept %d orphaned dataset folders", removed)
        return removed

    def _forget(self, dataset_id: str) -> None:
        self._meta.pop(dataset_id, None)
        self._summarising.pop(dataset_id, None)
        self._summary_cache.pop(dataset_id, None)
        with self._files_lock:
            entry = self._files.pop(dataset_id, None)
        if entry is not None:
            entry[0].close()
        for key in [k for k in self._orders if k[0] == dataset_id]:
            del self._orders[key]

    async def aclose(self) -> None:
        if self._summarising:  # let them finish writing (seconds at most), so nothing writes after close
            await asyncio.wait(self._summarising.values())
            self._summarising.clear()
        await self._writes_done()
        with self._files_lock:
            for table, _ in self._files.values():
                table.close()
            self._files.clear()
        self._orders.clear()
        await self.catalog.aclose()


def _folders_older_than(root: Path, cutoff: float) -> list[Path]:
    """Folders directly in ``root`` whose contents were last modified before ``cutoff`` (epoch s)."""
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        if entry.is_symlink() or not entry.is_dir():
            continue
        try:
            newest = max([entry.stat().st_mtime, *(p.stat().st_mtime for p in entry.iterdir())])
        except OSError:  # removed meanwhile
            continue
        if newest < cutoff:
            found.append(entry)
    return found


def _summarise(folder: Path, meta: DatasetMeta) -> Path:
    """Compute and save what charts need (``bot.datasets.summaries``) and what the first sorted pages
    need (``bot.datasets.extremes``); return the chart summaries' file."""
    table = TableFile(folder / DATA_FILE)
    try:
        saved = summaries.save(folder, summaries.summarise_file(table, [c.name for c in meta.columns if c.numeric]))
        make_private(saved)
        make_private(extremes.save(folder, extremes.of_file(table, [c.name for c in meta.columns if c.sortable])))
    finally:
        table.close()
    return saved


def _logged(future: asyncio.Future[Any]) -> None:
    """Log a background computation that failed (the dataset works without it)."""
    if not future.cancelled() and future.exception() is not None:
        log.warning("dataset summaries failed; charts and first sorted pages read the data instead",
                    exc_info=future.exception())


def _quietly(future: asyncio.Future[Any]) -> None:
    """Retrieve a background future's exception: whoever needs the result awaits it and sees it."""
    if not future.cancelled():
        future.exception()


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _expired_message(name: str) -> str:
    return f'The dataset "{name}" expired and was removed; run the code again to get it back.'
