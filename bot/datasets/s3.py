"""``DatasetStore`` on S3 (data) and DynamoDB (catalogue), shared by every replica.

Layout under ``<prefix>datasets/<id>/``: ``data.arrow`` (the same Arrow IPC file of 8,192-row batches
as the local store), ``index.json`` (schema and byte range of each batch, ``bot.datasets.batch_index``),
``extremes.arrow`` (each batch's minimum and maximum per sortable column, ``bot.datasets.extremes``,
written in the background after registration) and ``sort-<column>.bin`` / ``.json`` (a column's
ascending permutation, raw little-endian integers).

A page costs one ranged GET of the batch it needs, or of the two adjacent ones at a boundary; the
index (read once per replica) says which bytes. A sorted page reads its slice of the permutation
with a ranged GET (the whole permutation once, when it is small) and the batches its rows are in.
Until some replica has stored a column's permutation, the first sorted pages are read from the few
batches their extremes point to, while this replica computes the permutation.
Decoded batches stay in a small in-memory LRU; charts, exports and sorting read the whole file,
downloaded once into a bounded local cache folder. Retention is datathread's: every read checks the
expiry against ``clock``, and ``sweep`` deletes expired data from S3 and the catalogue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from bot.datasets import aggregates, charts, extremes
from bot.datasets.batch_index import BatchIndex, IndexedBatchWriter, decode_batches
from bot.datasets.dynamo_catalog import DynamoCatalog
from bot.datasets.exporting import check_format, export_batches, write_export
from bot.datasets.formatting import format_rows, logical_type
from bot.datasets.local import _expired_message, _logged, _quietly
from bot.datasets.model import (
    ChartData,
    ChartSpec,
    Column,
    DatasetError,
    DatasetExpired,
    DatasetMeta,
    DatasetNotFound,
    ExportFormat,
    Page,
    PageWindow,
    SortSpec,
)
from bot.datasets.readers import Source, file_opener, frame_source
from bot.datasets.tablefile import (
    BATCH_ROWS,
    DATA_FILE,
    TOP_ROWS,
    SortOrder,
    TableFile,
    compute_sort,
    descending_sort,
)
from bot.private import make_private, private_dir
from bot.storage.dynamodb import Clock, utc_now

if TYPE_CHECKING:
    import pandas as pd

    from bot.messages import ThreadKey

log = logging.getLogger(__name__)

#: Decoded batches kept in memory per replica (bytes).
BATCH_CACHE_BYTES = 64 * 1024 * 1024
#: Whole data files kept on local disk per replica for charts, exports and sorting (bytes).
FILE_CACHE_BYTES = 512 * 1024 * 1024
#: Permutations up to this size are fetched whole once and kept; larger ones are read by range.
SMALL_ORDER_BYTES = 4 * 1024 * 1024
INDEX_FILE = "index.json"
#: Batches a first sorted page may fetch to answer from the batches' extremes before it waits for the
#: full order instead (64 batches of the benchmark's 8-column table: ~36 MB of ranged GETs).
FIRST_PAGE_BATCHES = 64
#: Batches of the first round of those GETs (sent side by side): random data's first page needs about
#: 20 batches, two rounds from 8; sorted data's needs one.
FIRST_ROUND = 8


class _BatchCache:
    """LRU of decoded record batches, bounded by their size in bytes. Thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, int], pa.RecordBatch] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> pa.RecordBatch | None:
        with self._lock:
            batch = self._items.get(key)
            if batch is not None:
                self._items.move_to_end(key)
            return batch

    def put(self, key: tuple[str, int], batch: pa.RecordBatch) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = batch
            self._bytes += batch.nbytes
            while self._bytes > self.max_bytes and len(self._items) > 1:
                self._bytes -= self._items.popitem(last=False)[1].nbytes

    def forget(self, dataset_id: str) -> None:
        with self._lock:
            for key in [k for k in self._items if k[0] == dataset_id]:
                self._bytes -= self._items.pop(key).nbytes


class _RangedOrder:
    """A sort permutation (one column, one direction) on S3 read by range: ``positions`` as
    ``SortOrder.positions``."""

    def __init__(self, fetch: Callable[[int, int], bytes], dtype: np.dtype[Any], length: int, valid: int) -> None:
        self._fetch = fetch
        self.dtype = dtype
        self.length = length
        self.valid = valid

    def _read(self, lo: int, hi: int) -> np.ndarray:
        if hi <= lo:
            return np.empty(0, dtype=self.dtype)
        size = self.dtype.itemsize
        return np.frombuffer(self._fetch(lo * size, hi * size), dtype=self.dtype)

    def positions(self, start: int, stop: int) -> np.ndarray:
        return self._read(start, stop)


class S3DatasetStore:
    """Datasets in ``bucket`` under ``prefix``, catalogued in ``catalog``, kept for ``retention``.

    ``s3`` is a boto3 S3 client; ``cache_root`` a local folder this replica may fill up to
    ``FILE_CACHE_BYTES``. ``clock`` is "now" for expiry (tests move it).
    """

    def __init__(self, s3: Any, bucket: str, prefix: str, catalog: DynamoCatalog, cache_root: Path,
                 retention: timedelta = timedelta(hours=6), clock: Clock = utc_now) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.catalog = catalog
        self.cache_root = cache_root
        self.retention = retention
        self.clock = clock
        self._meta: dict[str, DatasetMeta] = {}
        self._indexes: OrderedDict[str, BatchIndex] = OrderedDict()
        self._batches = _BatchCache(BATCH_CACHE_BYTES)
        self._orders: OrderedDict[tuple[str, int, bool], SortOrder | _RangedOrder] = OrderedDict()
        self._sorting: dict[tuple[str, int, bool], asyncio.Future[SortOrder | _RangedOrder]] = {}
        self._files_lock = threading.Lock()
        self._fetchers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="s3-batches")
        self._extremes: OrderedDict[str, pa.Table] = OrderedDict()
        self._summarising: dict[str, asyncio.Future[None]] = {}

    def _key(self, dataset_id: str, name: str) -> str:
        return f"{self.prefix}datasets/{dataset_id}/{name}"

    def _get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        extra = {} if byte_range is None else {"Range": f"bytes={byte_range[0]}-{byte_range[1] - 1}"}
        body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key, **extra)["Body"].read()
        return body

    # registration -------------------------------------------------------------------------------

    async def register_frame(
        self, frame: pd.DataFrame, *, name: str, thread: ThreadKey, owner: str, source: str | None = None
    ) -> DatasetMeta:
        return await self._register(lambda: frame_source(frame), name=name, thread=thread, owner=owner, source=source)

    async def register_file(self, path: Path, *, name: str, thread: ThreadKey, owner: str) -> DatasetMeta | None:
        opener = file_opener(path)
        if opener is None:
            return None
        return await self._register(opener, name=name, thread=thread, owner=owner, source=path.name)

    async def _register(
        self, open_source: Callable[[], Source], *, name: str, thread: ThreadKey, owner: str, source: str | None
    ) -> DatasetMeta:
        dataset_id = secrets.token_urlsafe(16)

        def build() -> tuple[pa.Schema, int, tuple[str, ...]]:
            part = self.cache_root / f".part-{dataset_id}"
            private_dir(part)
            try:
                src = open_source()
                writer = IndexedBatchWriter(part / DATA_FILE, src.schema)
                try:
                    for batch in src.batches:
                        writer.write(batch)
                    rows = writer.close()
                except BaseException:
                    writer.abort()
                    raise
                index = writer.index(part / DATA_FILE)
                # Data first, index last: an index on S3 means the data beside it is complete.
                self.s3.upload_file(str(part / DATA_FILE), self.bucket, self._key(dataset_id, DATA_FILE))
                self.s3.put_object(Bucket=self.bucket, Key=self._key(dataset_id, INDEX_FILE),
                                   Body=index.to_json().encode())
                self._remember_index(dataset_id, index)
                make_private(part / DATA_FILE)
                os.rename(part, self.cache_root / dataset_id)  # warm for charts and sorts on this replica
                return src.schema, rows, src.dropped
            except BaseException:
                shutil.rmtree(part, ignore_errors=True)
                raise

        private_dir(self.cache_root)
        schema, rows, dropped = await asyncio.to_thread(build)
        created = self.clock()
        meta = DatasetMeta(
            id=dataset_id, name=name, columns=tuple(Column(f.name, logical_type(f.type)) for f in schema),
            rows=rows, thread=thread, owner=owner, created=created, expires=created + self.retention,
            source=source, dropped=dropped,
        )
        await self.catalog.put(meta)
        self._meta[dataset_id] = meta
        # Opened before the cache is trimmed: the extremes are read through this handle even when the
        # trim removes the file's name.
        table = TableFile(self.cache_root / dataset_id / DATA_FILE)
        summarising = asyncio.ensure_future(asyncio.to_thread(self._keep_extremes, meta, table))
        self._summarising[dataset_id] = summarising
        summarising.add_done_callback(lambda done: self._summarising.pop(dataset_id, None))
        summarising.add_done_callback(_logged)
        await asyncio.to_thread(self._trim_file_cache)
        log.info("dataset %s registered on S3: %d rows x %d columns", dataset_id, rows, len(meta.columns))
        return meta

    def _keep_extremes(self, meta: DatasetMeta, table: TableFile) -> None:
        """Each batch's extremes (``bot.datasets.extremes``) from the file just written, kept on S3
        beside it for every replica's first sorted pages."""
        try:
            bounds = extremes.of_file(table, [c.name for c in meta.columns if c.sortable])
        finally:
            table.close()
        self.s3.put_object(Bucket=self.bucket, Key=self._key(meta.id, extremes.EXTREMES_FILE),
                           Body=extremes.to_bytes(bounds))

    # lookup -------------------------------------------------------------------------------------

    async def get(self, dataset_id: str) -> DatasetMeta:
        meta = self._meta.get(dataset_id)
        if meta is None:
            meta = await self.catalog.get(dataset_id)
            if meta is None:
                stone = await self.catalog.tombstone(dataset_id)
                if stone is not None:
                    raise DatasetExpired(_expired_message(stone[0]))
                raise DatasetNotFound("That dataset does not exist (or the link is wrong).")
            self._meta[dataset_id] = meta
        if meta.expires <= self.clock():
            raise DatasetExpired(_expired_message(meta.name))
        return meta

    async def list(self, thread: ThreadKey) -> Sequence[DatasetMeta]:
        now = self.clock()
        return [m for m in await self.catalog.by_thread(thread) if m.expires > now]

    def _remember_index(self, dataset_id: str, index: BatchIndex) -> None:
        self._indexes[dataset_id] = index
        while len(self._indexes) > 1024:
            self._indexes.popitem(last=False)

    def _index(self, meta: DatasetMeta) -> BatchIndex:
        index = self._indexes.get(meta.id)
        if index is None:
            try:
                index = BatchIndex.from_json(self._get(self._key(meta.id, INDEX_FILE)))
            except Exception as exc:
                if _missing(exc):
                    raise DatasetExpired(_expired_message(meta.name)) from None
                raise
            self._remember_index(meta.id, index)
        return index

    def _batches_for(self, meta: DatasetMeta, wanted: Sequence[int]) -> dict[int, pa.RecordBatch]:
        """Batches ``wanted`` from the cache or S3: adjacent missing ones share one ranged GET."""
        index = self._index(meta)
        found = {i: b for i in wanted if (b := self._batches.get((meta.id, i))) is not None}
        missing = sorted(set(wanted) - set(found))
        runs: list[tuple[int, int]] = []
        for i in missing:
            if runs and runs[-1][1] == i - 1 and i - runs[-1][0] < 2:
                runs[-1] = (runs[-1][0], i)  # two adjacent batches: one request
            else:
                runs.append((i, i))

        def fetch(run: tuple[int, int]) -> list[tuple[int, pa.RecordBatch]]:
            data = self._get(self._key(meta.id, DATA_FILE), index.span(*run))
            return list(enumerate(decode_batches(index, run[0], data), start=run[0]))

        results = [fetch(runs[0])] if len(runs) == 1 else list(self._fetchers.map(fetch, runs))
        for got in results:
            for i, batch in got:
                self._batches.put((meta.id, i), batch)
                found[i] = batch
        return found

    # pages --------------------------------------------------------------------------------------

    async def page(self, dataset_id: str, number: int, size: int, sort: SortSpec | None = None) -> Page:
        meta = await self.get(dataset_id)
        w = PageWindow.of(meta.rows, number, size)
        start, stop = w.start, w.stop
        positions: np.ndarray | None = None
        if sort is not None and stop > start:
            positions = await self._first_positions(meta, sort, start, stop)
            if positions is None:
                order = await self._order(meta, sort.column, sort.descending)
                positions = np.asarray(order.positions(start, stop), dtype=np.int64)

        def read() -> tuple[tuple[str, ...], ...]:
            if stop <= start:
                return ()
            if positions is None:
                first, last = start // BATCH_ROWS, (stop - 1) // BATCH_ROWS
                got = self._batches_for(meta, range(first, last + 1))
                table = pa.Table.from_batches([got[i] for i in range(first, last + 1)])
                return format_rows(table.slice(start - first * BATCH_ROWS, stop - start))
            rows = positions
            got = self._batches_for(meta, sorted({int(r) // BATCH_ROWS for r in rows}))
            taken = [got[int(r) // BATCH_ROWS].slice(int(r) % BATCH_ROWS, 1) for r in rows]
            return format_rows(pa.Table.from_batches(taken))

        rows = await asyncio.to_thread(read)
        return Page(dataset=meta, number=w.number, size=w.size, start=start, rows=rows, sort=sort)

    async def _first_positions(self, meta: DatasetMeta, sort: SortSpec, start: int, stop: int) -> np.ndarray | None:
        """Rows at sorted positions ``start:stop`` while no replica has stored the column's order: read
        from the few batches that can hold them (``bot.datasets.extremes``), this replica computing the
        order meanwhile (later pages wait for it). ``None`` when the order is at hand (here or on S3)
        or being computed here, past the first pages, or without extremes: the caller waits for it."""
        key = (meta.id, meta.sortable_index(sort.column), sort.descending)
        if stop > TOP_ROWS or key in self._orders or key in self._sorting:
            return None
        try:
            positions = await asyncio.to_thread(self._from_extremes, meta, key[1], sort, start, stop)
        except DatasetError:
            raise
        except Exception:  # the order still answers: a failure here is logged, never the page's
            log.warning("first sorted rows of %s from its extremes failed; waiting for the order", meta.id,
                        exc_info=True)
            return None
        if positions is not None:
            # The order goes on being computed (and stored) with nobody awaiting it now.
            asyncio.ensure_future(self._order(meta, sort.column, sort.descending)).add_done_callback(_quietly)
        return positions

    def _from_extremes(self, meta: DatasetMeta, index: int, sort: SortSpec, start: int,
                       stop: int) -> np.ndarray | None:
        """``_first_positions``' reads (blocking): ``None`` when a stored order or no extremes."""
        try:
            self._get(self._order_keys(meta.id, index, sort.descending)[1])
            return None  # another replica stored the order: reading it costs less
        except Exception as exc:
            if not _missing(exc):
                raise
        bounds = extremes.bounds_of(self._extremes_of(meta), sort.column, sort.descending)
        if bounds is None:
            return None

        def read(ids: list[int]) -> list[pa.Array]:
            got = self._batches_for(meta, ids)  # a round's batches fetched side by side
            return [got[i].column(sort.column) for i in ids]

        return extremes.first_rows(read, bounds, start, stop, sort.descending, BATCH_ROWS, most=FIRST_PAGE_BATCHES,
                                   first_round=FIRST_ROUND)

    def _extremes_of(self, meta: DatasetMeta) -> pa.Table | None:
        """The dataset's batch extremes from S3 (kept in memory once read), or ``None`` before they are
        written (just registered) or for a dataset registered without them."""
        found = self._extremes.get(meta.id)
        if found is None:
            try:
                found = extremes.from_bytes(self._get(self._key(meta.id, extremes.EXTREMES_FILE)))
            except Exception as exc:
                if not _missing(exc):
                    raise
                return None
            if found is None:
                return None
            self._extremes[meta.id] = found
            while len(self._extremes) > 256:
                self._extremes.popitem(last=False)
        return found

    def _order_keys(self, dataset_id: str, index: int, descending: bool) -> tuple[str, str]:
        """The S3 keys of a column's stored permutation and of its description."""
        stem = f"sort-{index}{'-desc' if descending else ''}"
        return self._key(dataset_id, f"{stem}.bin"), self._key(dataset_id, f"{stem}.json")

    async def _order(self, meta: DatasetMeta, column: str, descending: bool = False) -> SortOrder | _RangedOrder:
        """The order of ``column`` in one direction (stable both ways, missing values last, exactly as
        the local store): from memory, from S3, or computed once and stored."""
        key = (meta.id, meta.sortable_index(column), descending)
        order = self._orders.get(key)
        if order is not None:
            return order
        pending = self._sorting.get(key)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(self._load_or_sort, meta, key[1], descending))
            self._sorting[key] = pending
            pending.add_done_callback(lambda _: self._sorting.pop(key, None))
        order = await asyncio.shield(pending)
        self._orders[key] = order
        while len(self._orders) > 256:
            self._orders.popitem(last=False)
        return order

    def _load_or_sort(self, meta: DatasetMeta, index: int, descending: bool = False) -> SortOrder | _RangedOrder:
        """The stored permutation, or computed from the whole file and stored (another replica
        computing the same one at the same time writes identical bytes)."""
        bin_key, json_key = self._order_keys(meta.id, index, descending)
        try:
            info = json.loads(self._get(json_key))
        except Exception as exc:
            if not _missing(exc):
                raise
            name = meta.columns[index].name
            table = self._local_table(meta)
            try:
                column = table.columns([name]).column(name)
                order = compute_sort(column)
                if descending:
                    order = descending_sort(order, column)
            finally:
                table.close()
            perm = np.ascontiguousarray(order.perm, dtype=order.perm.dtype.newbyteorder("<"))
            # The permutation first, its description last: a description means the bytes are there.
            self.s3.put_object(Bucket=self.bucket, Key=bin_key, Body=perm.tobytes())
            self.s3.put_object(Bucket=self.bucket, Key=json_key, Body=json.dumps(
                {"valid": order.valid, "dtype": perm.dtype.str, "length": len(perm)}).encode())
            return SortOrder(perm, order.valid)
        dtype = np.dtype(info["dtype"])
        if info["length"] * dtype.itemsize <= SMALL_ORDER_BYTES:
            return SortOrder(np.frombuffer(self._get(bin_key), dtype=dtype), int(info["valid"]))
        return _RangedOrder(lambda lo, hi: self._get(bin_key, (lo, hi)), dtype, int(info["length"]), int(info["valid"]))

    # whole files: charts, exports, sorting ------------------------------------------------------

    def _local_table(self, meta: DatasetMeta) -> TableFile:
        """The whole data file from the local cache (downloaded first if needed); close it after use."""
        folder = self.cache_root / meta.id
        path = folder / DATA_FILE
        with self._files_lock:
            if not path.exists():
                private_dir(folder)
                tmp = folder / f"{DATA_FILE}.{secrets.token_hex(4)}.part"
                try:
                    self.s3.download_file(self.bucket, self._key(meta.id, DATA_FILE), str(tmp))
                except Exception as exc:
                    tmp.unlink(missing_ok=True)
                    if _missing(exc) or "404" in str(exc):
                        raise DatasetExpired(_expired_message(meta.name)) from None
                    raise
                make_private(tmp)
                os.replace(tmp, path)
            os.utime(folder)  # most recently used: trimmed last
        return TableFile(path)

    def _trim_file_cache(self) -> None:
        """Delete the least recently used cached files until the cache fits ``FILE_CACHE_BYTES``."""
        if not self.cache_root.is_dir():
            return
        entries = []
        for folder in self.cache_root.iterdir():
            if folder.is_dir() and not folder.name.startswith(".part-"):
                size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
                entries.append((folder.stat().st_mtime, size, folder))
        total = sum(e[1] for e in entries)
        for _, size, folder in sorted(entries):
            if total <= FILE_CACHE_BYTES:
                break
            with self._files_lock:
                shutil.rmtree(folder, ignore_errors=True)
            total -= size

    async def chart(self, dataset_id: str, spec: ChartSpec, out: Path) -> Path:
        meta = await self.get(dataset_id)
        charts.validate(meta, spec)

        def draw() -> Path:
            table = self._local_table(meta)
            try:
                drawn = charts.render(table, meta, spec, out)
            finally:
                table.close()
            make_private(drawn)
            self._trim_file_cache()
            return drawn

        return await asyncio.to_thread(draw)

    async def chart_data(self, dataset_id: str, spec: ChartSpec) -> ChartData | None:
        meta = await self.get(dataset_id)
        charts.validate(meta, spec)
        if not aggregates.may_be_small(meta, spec):
            return None  # known not small before the file is fetched

        def aggregate() -> ChartData | None:
            table = self._local_table(meta)
            try:
                return aggregates.small_aggregate(table, meta, spec)
            finally:
                table.close()
                self._trim_file_cache()

        return await asyncio.to_thread(aggregate)

    async def export(self, dataset_id: str, fmt: ExportFormat, out: Path, sort: SortSpec | None = None) -> Path:
        """Write the whole dataset to ``out`` as csv or parquet, batch by batch (in ``sort`` order if given:
        the sort permutation is read from S3 a chunk at a time, as sorted pages read it)."""
        meta = await self.get(dataset_id)
        check_format(fmt)
        order = await self._order(meta, sort.column, sort.descending) if sort is not None else None

        def write() -> Path:
            table = self._local_table(meta)
            try:
                write_export(export_batches(table, meta.rows, order), table.schema, fmt, out)
            finally:
                table.close()
            self._trim_file_cache()
            return out

        return await asyncio.to_thread(write)

    # retention ----------------------------------------------------------------------------------

    async def sweep(self, now: datetime | None = None) -> int:
        """Delete expired datasets from S3 and the catalogue; return how many this replica removed
        (replicas sweeping at once each count only the ones they buried)."""
        now = now or self.clock()
        removed = 0
        for meta in await self.catalog.expired(now):
            self._forget(meta.id)
            await asyncio.to_thread(self._delete_objects, meta.id)
            if await self.catalog.bury_once(meta):
                removed += 1
        if removed:
            log.info("swept %d expired datasets from S3", removed)
        return removed

    def _delete_objects(self, dataset_id: str) -> None:
        prefix = self._key(dataset_id, "")
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for listing in pages:
            keys = [{"Key": o["Key"]} for o in listing.get("Contents", [])]
            if keys:
                self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
        with self._files_lock:
            shutil.rmtree(self.cache_root / dataset_id, ignore_errors=True)

    def _forget(self, dataset_id: str) -> None:
        self._meta.pop(dataset_id, None)
        self._indexes.pop(dataset_id, None)
        self._extremes.pop(dataset_id, None)
        self._batches.forget(dataset_id)
        for key in [k for k in self._orders if k[0] == dataset_id]:
            del self._orders[key]

    async def aclose(self) -> None:
        if self._summarising:  # let them finish writing (seconds at most), so nothing writes after close
            await asyncio.wait(list(self._summarising.values()))
        self._fetchers.shutdown(wait=True)
        self._orders.clear()
        await self.catalog.aclose()


def _missing(exc: BaseException) -> bool:
    """True for S3's "no such key" (the object was swept or never completed)."""
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code in ("NoSuchKey", "404", "NotFound")
