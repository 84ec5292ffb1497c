"""Dataset store benchmark: register, page, sort and chart a 10M-row x 8-column table.

    python -m benchmarks.datasets [--rows 10000000] [--repeat 3] [--naive-rows 1000000]
                                  [--scale-rows 50000000] [--scale-sort]

Drives ``LocalDatasetStore`` through its async API (one event loop) on a generated table of ints,
floats, strings, timestamps and bools, and prints medians next to the targets of issues 2 and 16 with
PASS / FAIL, each with the ratio to a baseline measured in the same run (the naive way, or the
previous way: cells formatted one by one, the catalogue opened before any data, the whole sort
before the first sorted page, a page read through the IPC footer and its whole batch). Every figure is
the median of ``--repeat`` runs (a run of a millisecond figure is itself the median of its samples),
printed with the runs it came from; the load average is printed with each section, since the machine
may be shared. The naive baseline (re-read a CSV with pandas for each click, then ``iloc`` the page)
is measured in the same run on ``--naive-rows`` rows and scaled linearly to ``--rows``.

"Cold" means: a new ``LocalDatasetStore`` object on the same root (empty in-memory caches) with every
file of the dataset's folder (data, layout, metadata) fsynced and dropped from the OS page cache by
``posix_fadvise(DONTNEED)`` just before the request; it is what the first click after a process
restart, on a dataset nobody has looked at for a while, costs. Sorts are timed on a column read into
the page cache just before (this VM's DAMON reclaim pages out pages unused for a minute, and a sort
of a column read from disk measures the disk).

``--scale-rows`` builds a dataset of that many distinct rows (50 x 1M generated with different seeds,
customers drawn from rows / 2 values of one width as at 10M) and checks that a middle page is within 1.5x of one of
1M rows; with ``--scale-sort`` it also sorts it (numeric and string: the first sorted page and the full
order, each run next to a run on the ``--rows`` dataset so both see the same load) and checks that the
times grow at most linearly (heavy: minutes, several GB).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from bot.datasets import charts
from bot.datasets.formatting import cells_one_by_one as cell_by_cell
from bot.datasets.layout import layout_path
from bot.datasets.local import LocalDatasetStore
from bot.datasets.memory import prefer_small_pages
from bot.datasets.model import ChartSpec, DatasetMeta, SortSpec
from bot.datasets.tablefile import COMPRESSION, DATA_FILE, SortOrder
from bot.messages import ThreadKey

THREAD = ThreadKey("bench", "T0", "C0", "1")
OWNER = "U0BENCH"
PAGE_SIZE = 20
RANDOM_PAGES = 1000
FAST_SAMPLES = 20  # ms-scale figures are sampled this many times per run
COLD_SAMPLES = 7  # cold pages per position per run (each after its own cache drop)
MS = 1e-3
MB = 1e6

# Targets (issue 2, "Datasets"; issue 16, "Interactive at any size").
WARM_PAGE = 1 * MS
COLD_PAGE = 2 * MS
END_START = 1.5
SCALE_RATIO = 1.5
SORTED_PAGE = 10 * MS
FIRST_SORTED_PAGE = 0.3
FULL_SORT = {"float64": 2.0, "string, unique-ish": 4.0}
CHART = 1.5
PAGING_RSS = 150 * MB
NAIVE_RATIO = 1000.0


# output ------------------------------------------------------------------------------------------

@dataclass
class Tally:
    passed: int = 0
    failed: int = 0


TALLY = Tally()


def dur(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def line(label: str, value: str, target: str = "", ok: bool | None = None, note: str = "") -> None:
    verdict = "" if ok is None else ("PASS" if ok else "FAIL")
    if ok is not None:
        TALLY.passed += ok
        TALLY.failed += not ok
    print(f"  {label:<50} {value:>12}  {target:<12} {verdict:<4}  {note}".rstrip(), flush=True)


def section(title: str) -> None:
    print(f"\n{title} [load average {load()}]", flush=True)


def load() -> str:
    """The 1-minute load average (other work on a shared machine moves every figure)."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "unknown"


def runs_note(values: list[float]) -> str:
    """The runs a median came from, as printed next to it."""
    return "runs " + " / ".join(dur(v) for v in values)


def progress(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


# machine -----------------------------------------------------------------------------------------

def cpu_model() -> str:
    """The CPU as ``lscpu`` names it, with family and model (a VM's "AMD EPYC" says little alone)."""
    fields: dict[str, str] = {}
    try:
        for row in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = row.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or "unknown"
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def filesystem(path: Path) -> str:
    """Filesystem type of ``path`` from /proc/self/mounts (tmpfs would make "cold" meaningless)."""
    best, kind = "", "unknown"
    try:
        for row in Path("/proc/self/mounts").read_text().splitlines():
            parts = row.split()
            if len(parts) > 2 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], f"{parts[2]} ({parts[0]} on {parts[1]})"
    except OSError:
        pass
    return kind


def print_machine(workdir: Path) -> None:
    print("Machine")
    print(f"  cpus {os.cpu_count()} · {cpu_model()} · Python {platform.python_version()} · pyarrow {pa.__version__}"
          f" · pandas {pd.__version__} · numpy {np.__version__}")
    print(f"  temp dir {workdir} on {filesystem(workdir)}")


# data --------------------------------------------------------------------------------------------

def make_frame(rows: int, seed: int = 42, first_id: int = 0, customers: int = 5_000_000) -> pd.DataFrame:
    """id int64 (from ``first_id``), amount float64, qty int32, region str (20 values), customer str
    (``C0001234``, one of ``customers``, all of one width), ts datetime64[ns] (increasing), flag bool, score
    float64 (5% NaN)."""
    rng = np.random.default_rng(seed)
    names = pa.array([f"region-{i:02d}" for i in range(20)])
    region = pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, 20, rows, dtype=np.int32)), names)
    width = max(7, len(str(customers - 1)))
    digits = pc.utf8_lpad(pc.cast(pa.array(rng.integers(0, customers, rows)), pa.string()), width, "0")
    customer = pc.binary_join_element_wise("C", digits, "")
    score = rng.normal(50, 15, rows)
    score[rng.random(rows) < 0.05] = np.nan
    ts = np.datetime64("2024-01-01T00:00:00", "ns") + np.cumsum(rng.integers(0, 6_000_000_000, rows)).astype(
        "timedelta64[ns]"
    )
    table = pa.table(
        {
            "id": np.arange(first_id, first_id + rows, dtype=np.int64),
            "amount": rng.lognormal(3, 1, rows),
            "qty": rng.integers(1, 100, rows, dtype=np.int32),
            "region": region.cast(pa.string()),
            "customer": customer,
            "ts": ts,
            "flag": rng.random(rows) < 0.3,
            "score": score,
        }
    )
    return table.to_pandas()


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    import pyarrow.csv as pcsv

    pcsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), str(path))


def naive_page(path: Path, number: int, size: int) -> pd.DataFrame:
    """What a bot without a store does on each click: parse the whole CSV, then take the page."""
    start = (number - 1) * size
    return pd.read_csv(path).iloc[start : start + size]


# memory ------------------------------------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> tuple[int, int]:
    """(resident bytes, of which file-backed / shared) from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        fields = f.read().split()
    return int(fields[1]) * _PAGE, int(fields[2]) * _PAGE


def reset_hwm() -> bool:
    """Reset VmHWM (peak RSS) to the current RSS (Linux >= 4.0); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def vm_hwm() -> int:
    with open("/proc/self/status") as f:
        for row in f:
            if row.startswith("VmHWM:"):
                return int(row.split()[1]) * 1024
    return 0


class PeakSampler:
    """Samples /proc/self/statm every millisecond; keeps the peak total and peak anonymous RSS."""

    def __init__(self) -> None:
        self.peak_total = self.peak_anon = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total, shared = rss()
            self.peak_total = max(self.peak_total, total)
            self.peak_anon = max(self.peak_anon, total - shared)
            self._stop.wait(0.001)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._run_once()

    def _run_once(self) -> None:
        total, shared = rss()
        self.peak_total = max(self.peak_total, total)
        self.peak_anon = max(self.peak_anon, total - shared)


# page cache --------------------------------------------------------------------------------------

def drop_cache(path: Path) -> bool:
    """Flush ``path`` and ask the kernel to drop it from the page cache; False if unsupported."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return True
    finally:
        os.close(fd)


def warm_column(path: Path, column: str) -> None:
    """Bring the bytes of ``column`` in the data file at ``path`` into the page cache (a byte of every
    page), just before a sort reads them: this VM's DAMON reclaim pages out pages unused for a minute
    (and registering 50M rows fills the cache with others), and a sort timed on a column read from disk
    measures the disk."""
    table = pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
    for chunk in table.column(column).chunks:
        for buffer in chunk.buffers():
            if buffer is not None and buffer.size:
                int(np.frombuffer(buffer, np.uint8)[::4096].sum())


def resident(path: Path) -> str:
    """Bytes of ``path`` in the page cache, by util-linux ``fincore`` when installed."""
    tool = shutil.which("fincore")
    if tool is None:
        return "unverified (no fincore)"
    out = subprocess.run([tool, "--bytes", "--noheadings", "--output", "RES", str(path)],
                         capture_output=True, text=True, check=False)
    return f"{int(out.stdout.strip()) / MB:.1f} MB resident" if out.stdout.strip().isdigit() else "unverified"


# timing ------------------------------------------------------------------------------------------

async def timed(fn: Callable[..., Awaitable[object]], *args: object) -> float:
    """Seconds taken by ``await fn(*args)``."""
    t0 = time.perf_counter()
    await fn(*args)
    return time.perf_counter() - t0


async def samples(n: int, fn: Callable[..., Awaitable[object]], *args: object) -> list[float]:
    """``n`` timings of ``await fn(*args)`` after one untimed warm-up call."""
    await fn(*args)
    return [await timed(fn, *args) for _ in range(n)]


async def run_medians(repeat: int, fn: Callable[..., Awaitable[object]], *args: object) -> list[float]:
    """``repeat`` runs of a millisecond figure, each the median of ``FAST_SAMPLES`` timings."""
    return [med(await samples(FAST_SAMPLES, fn, *args)) for _ in range(repeat)]


def med(values: list[float]) -> float:
    return statistics.median(values)


async def cell_by_cell_page(store: LocalDatasetStore, meta: DatasetMeta, number: int) -> None:
    """Baseline: the same page with every cell turned into a Python value and formatted one by one."""
    start = (number - 1) * PAGE_SIZE

    def read() -> object:
        table = store._file(meta).slice(start, min(start + PAGE_SIZE, meta.rows))
        columns = [cell_by_cell(table.column(i)) for i in range(table.num_columns)]
        return tuple(zip(*columns, strict=True))

    await asyncio.to_thread(read)


async def chart_from_data(store: LocalDatasetStore, meta: DatasetMeta, spec: ChartSpec, out: Path) -> None:
    """Baseline: the same chart drawn from the data (every value read) instead of the summaries."""
    await asyncio.to_thread(charts.render, store._file(meta), meta, spec, out, {})


def drop_folder_cache(folder: Path) -> bool:
    """Drop every file of a dataset's folder from the page cache (data, layout, metadata, orders)."""
    return all([drop_cache(path) for path in folder.iterdir() if path.is_file()])


async def cold_pages(root: Path, meta: DatasetMeta, where: dict[str, int], repeat: int,
                     lookup: Callable[[LocalDatasetStore], Awaitable[object]],
                     ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per position, ``repeat`` runs (each the median of ``COLD_SAMPLES``) of a cold page: the folder
    dropped from the page cache, a new store, ``lookup`` (the metadata), then the page. Positions are
    interleaved so that a transient (another process's I/O) hits all alike. Returns the totals and
    the lookups' share."""
    folder = root / meta.id
    totals: dict[str, list[float]] = {label: [] for label in where}
    lookups: dict[str, list[float]] = {label: [] for label in where}
    for _ in range(repeat):
        run_totals: dict[str, list[float]] = {label: [] for label in where}
        run_lookups: dict[str, list[float]] = {label: [] for label in where}
        for _ in range(COLD_SAMPLES):
            for label, k in where.items():
                drop_folder_cache(folder)
                fresh = LocalDatasetStore(root)
                t0 = time.perf_counter()
                await lookup(fresh)
                t1 = time.perf_counter()
                await fresh.page(meta.id, k, PAGE_SIZE)
                t2 = time.perf_counter()
                await fresh.aclose()
                run_totals[label].append(t2 - t0)
                run_lookups[label].append(t1 - t0)
        for label in where:
            totals[label].append(med(run_totals[label]))
            lookups[label].append(med(run_lookups[label]))
    return totals, lookups


@dataclass
class SortRuns:
    """Times of first sorts: to the first sorted page, to the full order, and the system CPU time of
    each run (mostly page faults on new memory)."""

    firsts: list[float]
    fulls: list[float]
    system: list[float]


#: Seconds of quiet before each first sort. The VM's balloon hands freed memory back to its host ~2 s
#: after it is freed, and memory the host has taken back costs several times more to touch again: without
#: the pause each 10M-row run reused, almost for free, the ~1 GB the 50M-row run before it had just freed,
#: while the 50M run found only the 10M run's ~250 MB. With it, every sort starts as on an idle server.
SORT_PAUSE = 4.0


async def sort_runs(root: Path, meta: DatasetMeta, column: str, repeat: int) -> SortRuns:
    """``repeat`` first sorts of ``column`` from scratch (saved orders deleted, a fresh store each run,
    pending writes flushed, ``SORT_PAUSE`` waited and the column read into the page cache first): the
    times to the first sorted page and to the full ascending order."""
    index = [c.name for c in meta.columns].index(column)
    runs = SortRuns([], [], [])
    for i in range(repeat):
        progress(f"first sort of {column}, {meta.rows:,} rows, {i + 1}/{repeat}")
        for descending in (False, True):
            npy = SortOrder.path(root / meta.id, index, descending)
            npy.unlink(missing_ok=True)
            npy.with_suffix(".json").unlink(missing_ok=True)
        os.sync()  # no writeback of earlier work (a 3 GB registration, saved orders) during the timing
        await asyncio.sleep(SORT_PAUSE)
        warm_column(root / meta.id / DATA_FILE, column)
        fresh = LocalDatasetStore(root)
        system = resource.getrusage(resource.RUSAGE_SELF).ru_stime
        t0 = time.perf_counter()
        await fresh.page(meta.id, 1, PAGE_SIZE, SortSpec(column))
        runs.firsts.append(time.perf_counter() - t0)
        await fresh.sort_order(meta.id, column)
        runs.fulls.append(time.perf_counter() - t0)
        runs.system.append(resource.getrusage(resource.RUSAGE_SELF).ru_stime - system)
        await fresh.aclose()
    return runs


@dataclass(frozen=True)
class Stored:
    """A dataset the benchmark registered, and the root of its store."""

    root: Path
    meta: DatasetMeta


async def scale_section(work: Path, big: int, repeat: int, sort: bool, base: Stored, columns: list[str]) -> None:
    """Warm middle pages of a 1M-row and a ``big``-row dataset (distinct rows, generated 1M at a time);
    with ``sort``, the first sorted page and full order of ``columns`` of ``big`` rows, each run next to
    one on ``base``."""
    import pyarrow.parquet as pq

    small = 1_000_000
    section(f"Scale: {big:,} distinct rows vs {small:,} (warm pages) and vs {base.meta.rows:,} (sorts)")
    progress(f"scale: writing {big:,} rows as parquet")
    path = work / "big.parquet"
    writer: pq.ParquetWriter | None = None
    for i in range(-(-big // small)):
        chunk = pa.Table.from_pandas(make_frame(min(small, big - i * small), seed=1000 + i, first_id=i * small,
                                                customers=big // 2), preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(str(path), chunk.schema)
        writer.write_table(chunk)
    assert writer is not None
    writer.close()
    store = LocalDatasetStore(work / "scale")
    progress(f"scale: registering {big:,} rows")
    t0 = time.perf_counter()
    big_meta = await store.register_file(path, name="big", thread=THREAD, owner=OWNER)
    line(f"register {big:,} rows (from parquet)", dur(time.perf_counter() - t0))
    path.unlink()
    small_meta = await store.register_frame(make_frame(small), name="small", thread=THREAD, owner=OWNER)
    assert big_meta is not None
    for m in (big_meta, small_meta):  # computed in the background after registration: not during the timings
        await store.summaries(m.id)
    times = {}
    for m in (small_meta, big_meta):
        runs = await run_medians(repeat, store.page, m.id, -(-m.rows // PAGE_SIZE) // 2, PAGE_SIZE)
        times[m.rows] = med(runs)
        line(f"middle page of {m.rows:,} rows", dur(times[m.rows]), "≤ 1 ms", times[m.rows] <= WARM_PAGE,
             runs_note(runs))
    ratio = times[big_meta.rows] / times[small_meta.rows]
    line(f"{big_meta.rows / 1e6:g}M / 1M", f"{ratio:.2f}", "≤ 1.5", ratio <= SCALE_RATIO)
    await store.aclose()  # each sort run below starts from a new store, as after a restart
    if sort:
        linear = big_meta.rows / base.meta.rows
        for column in columns:
            sorts = {"base": SortRuns([], [], []), "big": SortRuns([], [], [])}
            for _ in range(repeat):
                for key, root, meta in (("base", base.root, base.meta), ("big", store.root, big_meta)):
                    run = await sort_runs(root, meta, column, 1)
                    sorts[key].firsts.extend(run.firsts)
                    sorts[key].fulls.extend(run.fulls)
                    sorts[key].system.extend(run.system)
            for label, field in (("first sorted page", "firsts"), ("full order", "fulls")):
                big_runs, base_runs = getattr(sorts["big"], field), getattr(sorts["base"], field)
                took, ten = med(big_runs), med(base_runs)
                line(f"{label} by {column}, {big_meta.rows / 1e6:g}M rows", dur(took), f"≤ {linear:.3g}x",
                     took / ten <= linear, f"{took / ten:.2f}x {base.meta.rows / 1e6:g}M rows in the same runs "
                     f"({dur(ten)}); {runs_note(big_runs)}")
            line(f"  of which system time (page faults on new memory), {big_meta.rows / 1e6:g}M / "
                 f"{base.meta.rows / 1e6:g}M rows", f"{dur(med(sorts['big'].system))} / "
                 f"{dur(med(sorts['base'].system))}", note=runs_note(sorts["big"].system))
    shutil.rmtree(work / "scale")


# the run -----------------------------------------------------------------------------------------

async def main(rows: int, repeat: int, naive_rows: int, tmp: str | None, scale_rows: int, scale_sort: bool) -> None:
    began = time.perf_counter()
    prefer_small_pages()  # as the product's start-up does (bot.composition)
    with tempfile.TemporaryDirectory(prefix="datathread-bench-", dir=tmp) as tmpdir:
        work = Path(tmpdir)
        print_machine(work)
        print(f"  table {rows:,} rows x 8 columns; page size {PAGE_SIZE}; --repeat {repeat}: every figure is the "
              f"median of {repeat} runs (a run of a ms-scale figure: the median of {FAST_SAMPLES} timings after a "
              f"warm-up; of a cold page: of {COLD_SAMPLES}); load average {load()}")

        progress(f"generating {rows:,} rows")
        t0 = time.perf_counter()
        frame = make_frame(rows)
        gen_time = time.perf_counter() - t0
        naive_rows = min(naive_rows, rows)
        csv_path = work / "naive.csv"
        write_csv(frame.iloc[:naive_rows], csv_path)
        print(f"  generated in {dur(gen_time)}; frame {frame.memory_usage(deep=True).sum() / MB:,.0f} MB in memory")

        # registration: each run on its own root; the last one is kept for the rest
        section(f"Register (register_frame of the {rows:,}-row frame, {repeat} runs)")
        reg_times: list[float] = []
        store: LocalDatasetStore | None = None
        meta = None
        for i in range(repeat):
            progress(f"register {i + 1}/{repeat}")
            root = work / f"store{i}"
            candidate = LocalDatasetStore(root)
            t0 = time.perf_counter()
            meta = await candidate.register_frame(frame, name="sales", thread=THREAD, owner=OWNER)
            reg_times.append(time.perf_counter() - t0)
            if store is not None:
                await store.aclose()
                shutil.rmtree(store.root)
            store = candidate
        assert store is not None and meta is not None
        root = store.root
        data_file = root / meta.id / DATA_FILE
        del frame
        gc.collect()
        size_mb = data_file.stat().st_size / MB
        codec = COMPRESSION or "uncompressed"
        line("register_frame", dur(med(reg_times)),
             note=f"{rows / med(reg_times) / 1e6:.1f}M rows/s; data file {size_mb:,.0f} MB (Arrow IPC, {codec})")

        pages = -(-rows // PAGE_SIZE)
        where = {"start": 1, "middle": (pages + 1) // 2, "end": pages}

        # memory: 1,000 random pages right after registration (file not yet opened by this store)
        section(f"Memory: {RANDOM_PAGES:,} random pages after registration")
        progress("random pages (memory)")
        rng = np.random.default_rng(7)
        numbers = rng.integers(1, pages + 1, RANDOM_PAGES)
        # The freed frame sits in Arrow's allocator (mimalloc) until it decays back to the OS, which
        # would happen *during* the paging below and hide what paging adds: hand it back first.
        gc.collect()
        pa.default_memory_pool().release_unused()
        before_total, before_shared = rss()
        hwm_ok = reset_hwm()
        page_times: list[float] = []
        with PeakSampler() as peak:
            for k in numbers:
                page_times.append(await timed(store.page, meta.id, int(k), PAGE_SIZE))
        added = (vm_hwm() if hwm_ok else peak.peak_total) - before_total
        added_anon = peak.peak_anon - (before_total - before_shared)
        line("peak RSS added by paging", f"{added / MB:,.1f} MB", "≤ 150 MB", added <= PAGING_RSS,
             f"before {before_total / MB:,.0f} MB; {'VmHWM after clear_refs' if hwm_ok else 'sampled statm peak'}")
        line("  of which anonymous (heap)", f"{added_anon / MB:,.1f} MB",
             note="total minus this = file pages mapped into the process (none without a memory map)")
        line("random page (first reads of the file)", dur(med(page_times)),
             note=f"p99 {dur(float(np.quantile(page_times, 0.99)))}, max {dur(max(page_times))}")

        # warm pages
        section(f"Pages, warm (same store, file open and in the page cache; {repeat} runs of {FAST_SAMPLES})")
        progress("warm pages")
        warm: dict[str, float] = {}
        progress("warm pages, cell-by-cell baseline")
        base_runs = await run_medians(repeat, cell_by_cell_page, store, meta, where["middle"])
        base = med(base_runs)
        for label, k in where.items():
            runs = await run_medians(repeat, store.page, meta.id, k, PAGE_SIZE)
            warm[label] = med(runs)
            line(f"page {k:,} ({label})", dur(warm[label]), "≤ 1 ms", warm[label] <= WARM_PAGE,
                 f"baseline {base / warm[label]:.1f}x; {runs_note(runs)}")
        ratio = warm["end"] / warm["start"]
        line("end / start", f"{ratio:.2f}", "≤ 1.5", ratio <= END_START)
        line("baseline: middle page, every cell through format_cell", dur(base), note=runs_note(base_runs))

        # first sort: order computed from scratch (saved orders deleted, fresh store each run), after the
        # summaries that registration starts in the background (charts, first sorted pages) are in
        await store.summaries(meta.id)
        section(f"Sort ({repeat} runs each; fresh store, no saved order): first sorted page while the full "
                "order builds, then the full order")
        sort_columns = {"amount": "float64", "customer": "string, unique-ish"}
        for column, kind in sort_columns.items():
            sorted_runs = await sort_runs(root, meta, column, repeat)
            firsts, fulls = sorted_runs.firsts, sorted_runs.fulls
            first, full = med(firsts), med(fulls)
            line(f"first sorted page by {column} ({kind})", dur(first), "≤ 300 ms", first <= FIRST_SORTED_PAGE,
                 f"baseline (wait for the full order) {full / first:.1f}x; {runs_note(firsts)}")
            line(f"full order of {column}", dur(full), f"≤ {FULL_SORT[kind]:g} s", full <= FULL_SORT[kind],
                 runs_note(fulls))

        section(f"Sorted pages after the first sort (warm store, {repeat} runs of {FAST_SAMPLES})")
        progress("sorted pages")
        for column in sort_columns:
            for descending in (False, True):
                spec = SortSpec(column, descending)
                for label, k in where.items():
                    runs = await run_medians(repeat, store.page, meta.id, k, PAGE_SIZE, spec)
                    m = med(runs)
                    line(f"{column} {'desc' if descending else 'asc '} page {k:,} ({label})", dur(m), "≤ 10 ms",
                         m <= SORTED_PAGE, f"baseline (unsorted page) {m / warm[label]:.1f}x; {runs_note(runs)}")

        # charts
        section(f"Charts of {rows:,} points to PNG ({repeat} runs each after this process's first chart; "
                "baseline: drawn from the data, not the summaries)")
        chart_specs = {
            "line of amount by ts": ChartSpec("line", "ts", "amount"),
            "hist of amount": ChartSpec("hist", "amount"),
        }
        first_out = work / "chart-first.png"
        first_chart = await timed(store.chart, meta.id, ChartSpec("hist", "qty"), first_out)
        line("this process's first chart (hist of qty)", dur(first_chart), note="incl. the matplotlib import")
        for label, chart in chart_specs.items():
            progress(f"chart {label}")
            out = work / f"chart-{chart.kind}.png"
            ts = [await timed(store.chart, meta.id, chart, out) for _ in range(repeat)]
            from_data = [await timed(chart_from_data, store, meta, chart, out) for _ in range(repeat)]
            line(label, dur(med(ts)), "≤ 1.5 s", med(ts) <= CHART,
                 f"baseline {med(from_data) / med(ts):.1f}x ({dur(med(from_data))}); {runs_note(ts)}")

        # cold pages: warm store closed (so nothing of ours maps the file), cache dropped per page
        await store.aclose()
        os.sync()  # no writeback of this run's files (sort orders, charts, CSV) during the cold reads
        folder = root / meta.id
        section(f"Pages, cold ({repeat} runs of {COLD_SAMPLES}): new store object + the dataset's files "
                "dropped from the page cache")
        progress("cold pages")
        dropped = drop_folder_cache(folder)
        print(f"  posix_fadvise(DONTNEED): {'yes' if dropped else 'unavailable (page cache NOT dropped)'}; "
              f"after the drop: {resident(data_file)} of {size_mb:,.0f} MB")
        cold_runs, lookup_runs = await cold_pages(root, meta, where, repeat, lambda s: s.get(meta.id))
        cold = {label: med(runs) for label, runs in cold_runs.items()}
        progress("cold pages, baselines")
        layout = layout_path(data_file)
        hidden = layout.with_name(layout.name + ".off")
        layout.rename(hidden)  # the previous way: the IPC footer, then the page's whole batch
        try:
            whole_runs, _ = await cold_pages(root, meta, where, repeat, lambda s: s.get(meta.id))
        finally:
            hidden.rename(layout)
        catalogue_runs, _ = await cold_pages(root, meta, {"middle": where["middle"]}, repeat,
                                             lambda s: s.catalog.get(meta.id))
        whole = {label: med(runs) for label, runs in whole_runs.items()}
        for label, k in where.items():
            line(f"page {k:,} ({label})", dur(cold[label]), "≤ 2 ms", cold[label] <= COLD_PAGE,
                 f"baseline {whole[label] / cold[label]:.1f}x; metadata lookup {dur(med(lookup_runs[label]))}; "
                 f"{runs_note(cold_runs[label])}")
        cratio = cold["end"] / cold["start"]
        line("end / start", f"{cratio:.2f}", "≤ 1.5", cratio <= END_START)
        for label in where:
            line(f"baseline: {label} page through the footer and its whole batch", dur(whole[label]),
                 note=runs_note(whole_runs[label]))
        catalogue = med(catalogue_runs["middle"])
        line("baseline: middle page after opening the SQLite catalogue", dur(catalogue),
             note=f"{catalogue / cold['middle']:.1f}x the store's cold page; {runs_note(catalogue_runs['middle'])}")

        # naive baseline
        section(f"Naive baseline: pandas read_csv of the whole CSV, then iloc the page ({repeat} runs)")
        progress("naive baseline")
        naive_pages = -(-naive_rows // PAGE_SIZE)
        k = (naive_pages + 1) // 2
        naive = med([await timed(asyncio.to_thread, naive_page, csv_path, k, PAGE_SIZE) for _ in range(repeat)])
        scale = rows / naive_rows
        estimate = naive * scale
        line(f"measured at {naive_rows:,} rows (page {k:,})", dur(naive),
             note=f"CSV {csv_path.stat().st_size / MB:,.0f} MB")
        line(f"estimated at {rows:,} rows (linear, x{scale:g})", dur(estimate),
             note="scaled, not measured")
        speedup = estimate / warm["middle"]
        line("naive (est.) / warm middle page", f"{speedup:,.0f}x", "≥ 1000x", speedup >= NAIVE_RATIO)

        if scale_rows:
            await scale_section(work, scale_rows, repeat, scale_sort, Stored(root, meta), list(sort_columns))

    section(f"Result: {TALLY.passed} PASS, {TALLY.failed} FAIL; whole run {dur(time.perf_counter() - began)}"
            f" ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--naive-rows", type=int, default=1_000_000)
    parser.add_argument("--scale-rows", type=int, default=50_000_000,
                        help="rows of the scale check against 1M rows (0: skip it)")
    parser.add_argument("--scale-sort", action="store_true",
                        help="also sort the --scale-rows dataset and compare with --rows (minutes, several GB)")
    parser.add_argument("--tmp", default=None, help="parent of the temp dir (default: system temp; not tmpfs)")
    args = parser.parse_args()
    if args.rows < PAGE_SIZE or args.repeat < 1 or args.naive_rows < PAGE_SIZE:
        parser.error(f"--rows and --naive-rows must be >= {PAGE_SIZE}, --repeat >= 1")
    asyncio.run(main(args.rows, args.repeat, args.naive_rows, args.tmp, args.scale_rows, args.scale_sort))


if __name__ == "__main__":
    run()
