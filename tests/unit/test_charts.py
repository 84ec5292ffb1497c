"""Charts: every kind draws a PNG, big columns are downsampled without losing extremes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bot.datasets import charts
from bot.datasets.charts import minmax_indices
from bot.datasets.local import LocalDatasetStore
from bot.datasets.model import CHART_KINDS, ChartSpec, DatasetError
from bot.messages import ThreadKey

KEY = ThreadKey("test", "T", "C", "1.0")


async def test_every_kind_draws_a_png(store: LocalDatasetStore, tmp_path: Path) -> None:
    n = 50_000
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"day": pd.date_range("2026-01-01", periods=n, freq="min"),
                       "region": rng.choice(["north", "south", "east"], n),
                       "sales": rng.gamma(2.0, 10.0, n), "cost": rng.normal(50, 5, n)})
    meta = await store.register_frame(df, name="sales", thread=KEY, owner="U1")
    specs = {"line": ChartSpec("line", "day", "sales"), "bar": ChartSpec("bar", "region", "sales"),
             "scatter": ChartSpec("scatter", "sales", "cost"), "hist": ChartSpec("hist", "sales"),
             "box": ChartSpec("box", "sales")}
    assert set(specs) == set(CHART_KINDS)
    for kind, spec in specs.items():
        out = await store.chart(meta.id, spec, tmp_path / f"{kind}.png")
        with Image.open(out) as img:
            assert img.format == "PNG" and img.width >= 600 and img.height >= 350, kind
            colours = len(img.convert("RGB").getcolors(maxcolors=1 << 20) or ())
        assert colours > 10, f"{kind} chart looks empty"


async def test_unsuitable_columns_get_a_clear_message(store: LocalDatasetStore, tmp_path: Path) -> None:
    df = pd.DataFrame({"name": ["a", "b"], "n": [1, 2]})
    meta = await store.register_frame(df, name="t", thread=KEY, owner="U1")
    with pytest.raises(DatasetError, match="numeric"):
        await store.chart(meta.id, ChartSpec("line", "n", "name"), tmp_path / "x.png")
    with pytest.raises(DatasetError, match=r"[Nn]o column"):
        await store.chart(meta.id, ChartSpec("hist", "missing"), tmp_path / "y.png")


def test_minmax_downsampling_keeps_every_bucket_extreme() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=1_000_003)
    y[123_456] = 50.0  # a spike that a naive stride would miss
    y[987_654] = -50.0
    idx = minmax_indices(y, 2000)
    assert len(idx) <= 2100 and np.all(np.diff(idx) > 0)
    assert 123_456 in idx and 987_654 in idx
    assert y[idx].max() == y.max() and y[idx].min() == y.min()


def test_a_downsampled_line_is_drawn_as_a_band_through_every_kept_point() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rng = np.random.default_rng(2)
    values = rng.normal(size=100_000)
    values[71_234] = 40.0  # one spike, kept by the downsampling: the band must reach it
    idx = charts.minmax_indices(values, charts.LINE_POINTS)
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    charts._envelope(ax, idx, values[idx])
    [band] = ax.collections
    outline = {round(float(v), 9) for v in band.get_paths()[0].vertices[:, 1]}
    assert {round(float(v), 9) for v in values[idx]} <= outline
    assert max(outline) == 40.0
