"""Chart benchmark: charts of a 10M-row dataset, from its summaries and from its data.

    python -m benchmarks.charts [--rows 10000000] [--repeat 3]

Prints medians of ``--repeat`` runs (with the runs, and the load average per section) next to the
targets of issue 16 with PASS / FAIL, each with the ratio to the baseline
measured in the same run: the same chart drawn from the data (every value read and downsampled)
instead of the summaries computed at registration.

- "in memory": ``charts.render`` with the data file open and the summaries loaded, to a PNG file;
- "end to end": a new store object (metadata, summaries and data file opened) to PNG bytes;
- "first chart of a process": a new Python process that starts as ``serve`` does (a store, and
  matplotlib imported in the background) and is asked for a chart ``--first-after`` seconds later;
  the same figure right at start-up is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.datasets import (
    OWNER,
    TALLY,
    THREAD,
    dur,
    line,
    load,
    make_frame,
    print_machine,
    progress,
    runs_note,
    section,
)
from bot.datasets import charts
from bot.datasets.local import LocalDatasetStore
from bot.datasets.model import ChartSpec
from bot.datasets.tablefile import DATA_FILE, TableFile

IN_MEMORY = 0.100
END_TO_END = 0.400
PNG_BYTES = 150_000
FIRST_CHART = 1.0

SPECS = {
    "line of amount by ts": ChartSpec("line", "ts", "amount"),
    "line of score (by row)": ChartSpec("line", "score"),
    "hist of amount": ChartSpec("hist", "amount"),
}

FIRST = """
import asyncio, sys, time
from pathlib import Path
from bot.datasets import charts
from bot.datasets.local import LocalDatasetStore
from bot.datasets.model import ChartSpec

async def main() -> None:
    store = LocalDatasetStore(Path(sys.argv[1]))
    charts.warm_up()  # what `serve` does at start-up: matplotlib is imported in the background
    await asyncio.sleep(float(sys.argv[3]))
    t0 = time.perf_counter()
    await store.chart(sys.argv[2], ChartSpec("line", "ts", "amount"), Path(sys.argv[1]) / "first.png")
    print(time.perf_counter() - t0)
    await store.aclose()

asyncio.run(main())
"""


def first_chart(root: Path, dataset: str, after: float) -> float:
    out = subprocess.run([sys.executable, "-c", FIRST, str(root), dataset, str(after)], capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip())


async def main(rows: int, repeat: int, first_after: float) -> None:
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="datathread-charts-") as tmpdir:
        work = Path(tmpdir)
        print_machine(work)
        print(f"  table {rows:,} rows x 8 columns; --repeat {repeat}: every figure is the median of {repeat} runs; "
              f"load average {load()}")
        progress(f"generating and registering {rows:,} rows")
        store = LocalDatasetStore(work / "store")
        frame = make_frame(rows)
        t0 = time.perf_counter()
        meta = await store.register_frame(frame, name="sales", thread=THREAD, owner=OWNER)
        line("register_frame (incl. summaries)", dur(time.perf_counter() - t0))
        del frame
        table = TableFile(store.root / meta.id / DATA_FILE)
        summaries = await store.summaries(meta.id)
        await store.chart(meta.id, ChartSpec("hist", "qty"), work / "warm.png")  # this process's first chart

        for label, spec in SPECS.items():
            section(f"{label} ({repeat} runs each)")
            progress(label)
            out = work / f"{spec.kind}.png"
            mem = [timed(lambda s=spec, o=out: charts.render(table, meta, s, o, summaries)) for _ in range(repeat)]
            size = out.stat().st_size
            base = [timed(lambda s=spec, o=out: charts.render(table, meta, s, o, {})) for _ in range(repeat)]
            ends = []
            for _ in range(repeat):
                fresh = LocalDatasetStore(store.root)
                t0 = time.perf_counter()
                png = (await fresh.chart(meta.id, spec, out)).read_bytes()
                ends.append(time.perf_counter() - t0)
                await fresh.aclose()
            assert png[:4] == b"\x89PNG"
            m, b, e = statistics.median(mem), statistics.median(base), statistics.median(ends)
            line("in memory (summaries)", dur(m), "≤ 100 ms", m <= IN_MEMORY, f"baseline from the data {dur(b)}: "
                 f"{b / m:.1f}x slower; {runs_note(mem)}")
            line("end to end (new store to PNG bytes)", dur(e), "≤ 400 ms", e <= END_TO_END,
                 f"baseline (in memory from the data) {b / e:.1f}x; {runs_note(ends)}")
            line("PNG size", f"{size / 1000:.0f} KB", "≤ 150 KB", size <= PNG_BYTES)
        table.close()
        await store.aclose()

        section(f"First chart of a new process ({repeat} runs each)")
        progress("first chart")
        later = statistics.median([first_chart(store.root, meta.id, first_after) for _ in range(repeat)])
        at_once = statistics.median([first_chart(store.root, meta.id, 0.0) for _ in range(repeat)])
        line(f"asked {first_after:g} s after start-up", dur(later), "≤ 1 s", later <= FIRST_CHART,
             f"baseline asked at once (waits for the import): {dur(at_once)}, {at_once / later:.1f}x")

    section(f"Result: {TALLY.passed} PASS, {TALLY.failed} FAIL; whole run {dur(time.perf_counter() - began)}")


def timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--first-after", type=float, default=3.0,
                        help="seconds between a new process's start-up and its first chart request")
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.repeat, args.first_after))


if __name__ == "__main__":
    run()
