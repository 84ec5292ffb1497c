"""Charts of long columns come from the summaries computed at registration, and show the same thing
as charts computed from the data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from bot.datasets import charts
from bot.datasets.charts import minmax_indices
from bot.datasets.local import LocalDatasetStore
from bot.datasets.model import ChartSpec
from bot.datasets.summaries import summarise
from bot.datasets.tablefile import BATCH_ROWS, TableFile
from bot.messages import ThreadKey

KEY = ThreadKey("test", "T", "C", "1.0")


def values(n: int) -> np.ndarray:
    v = np.random.default_rng(3).normal(10, 3, n)
    v[::97] = np.nan
    return v


def test_batch_extremes_are_the_min_max_downsampling_of_the_data() -> None:
    v = values(5 * BATCH_ROWS)
    s = summarise(v)
    assert np.array_equal(s.extremes(), minmax_indices(v, 2 * len(s.min)))
    tail = values(5 * BATCH_ROWS + 123)  # a short last batch is its own bucket
    last = tail[5 * BATCH_ROWS :]
    assert summarise(tail).argmax[-1] == 5 * BATCH_ROWS + np.nanargmax(last)
    assert summarise(tail).last[-1] == last[-1]


def test_the_fine_histogram_rebins_to_numpys_histogram() -> None:
    v = values(100_000)
    counts, edges = summarise(v).histogram(50)  # type: ignore[misc]
    expected, expected_edges = np.histogram(v[np.isfinite(v)], bins=50)
    assert np.allclose(edges, expected_edges)
    assert np.abs(counts - expected).sum() <= 2  # a value exactly on an edge may fall either side
    assert counts.sum() == expected.sum()


class RecordingTable(TableFile):
    """The real data file, recording which whole columns a chart reads."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.read: list[str] = []

    def columns(self, names):  # type: ignore[no-untyped-def]
        self.read += list(names)
        return super().columns(names)


async def test_line_and_hist_of_a_long_numeric_column_read_no_column(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # "long" is relative to the points a line keeps: scaled down so that 3 batches are long.
    monkeypatch.setattr(charts, "LINE_POINTS", 8)
    store = LocalDatasetStore(tmp_path / "datasets")
    n = 3 * BATCH_ROWS
    meta = await store.register_frame(pd.DataFrame({"v": values(n), "s": ["x"] * n}), name="df", thread=KEY,
                                      owner="U1")
    table = RecordingTable(tmp_path / "datasets" / meta.id / "data.arrow")
    sums = await store.summaries(meta.id)
    for spec in (ChartSpec("line", "v"), ChartSpec("hist", "v"), ChartSpec("line", "s", "v")):
        out = charts.render(table, meta, spec, tmp_path / f"{spec.kind}.png", sums)
        assert out.read_bytes()[:4] == b"\x89PNG"
    assert table.read == []  # summaries, and a few rows for the string axis labels
    charts.render(table, meta, ChartSpec("box", "v"), tmp_path / "box.png", sums)
    assert table.read == ["v"]  # what summaries cannot answer reads the data
    table.close()
    await store.aclose()


def test_summaries_skip_missing_and_infinite_values() -> None:
    s = summarise(np.array([np.nan, np.inf, 1.0, -np.inf, 3.0]))
    assert (s.lo, s.hi, int(s.counts.sum())) == (1.0, 3.0, 2)
    assert pa.types.is_integer(pa.from_numpy_dtype(s.argmin.dtype))
