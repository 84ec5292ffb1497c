"""A matplotlib backend for conversation kernels: Agg drawing, ``show()`` saves PNGs in the workspace.

Selected with ``MPLBACKEND=module://bot.agents.kernel.mpl_backend`` so matplotlib is only imported when the
user's code imports it. Figures are saved by ``startup.save_open_figures``.
"""

from __future__ import annotations

from typing import Any

from matplotlib.backend_bases import FigureManagerBase
from matplotlib.backends.backend_agg import FigureCanvasAgg

from bot.agents.kernel.startup import save_open_figures

FigureCanvas = FigureCanvasAgg
FigureManager = FigureManagerBase


def show(*args: Any, **kwargs: Any) -> None:
    """``plt.show()``: save every open figure as ``figures/figure-<n>.png`` and close it."""
    save_open_figures()
