"""Dataset data types and the store contract. Full data lives server-side; messages show pages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from bot.messages import ThreadKey

ChartKind = Literal["line", "bar", "scatter", "hist", "box"]
CHART_KINDS: tuple[ChartKind, ...] = ("line", "bar", "scatter", "hist", "box")
ExportFormat = Literal["csv", "parquet"]


@dataclass(frozen=True)
class Column:
    """A column name and its logical type: int, float, str, bool, datetime, date or other."""

    name: str
    type: str

    @property
    def numeric(self) -> bool:
        return self.type in ("int", "float")

    @property
    def sortable(self) -> bool:
        """Whether pages can be sorted by it (not nested or binary values)."""
        return self.type != "other"


@dataclass(frozen=True)
class DatasetMeta:
    """Reference to a full table kept server-side, plus what a message needs to show it.

    ``id`` is random and unguessable; rows are read page by page from the store.
    """

    id: str
    name: str
    columns: tuple[Column, ...]
    rows: int
    thread: ThreadKey
    owner: str
    created: datetime
    expires: datetime
    source: str | None = None  # workspace file it came from, if any
    #: Columns of the source left out because they could not be stored (the user is told).
    dropped: tuple[str, ...] = ()

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def sortable_index(self, name: str) -> int:
        """The index of column ``name``, or ``DatasetError`` saying why pages cannot be sorted by it."""
        col = self.column(name)
        if col is None:
            raise DatasetError(f'no column "{name}"; columns: {", ".join(c.name for c in self.columns)}')
        if not col.sortable:
            raise DatasetError(f'column "{name}" cannot be sorted (it holds nested or binary values)')
        return self.columns.index(col)


@dataclass(frozen=True)
class SortSpec:
    column: str
    descending: bool = False


@dataclass(frozen=True)
class PageWindow:
    """Which rows page ``number`` of ``size`` rows covers: a number past the end means the last page,
    below 1 the first (so a stale Next never fails). Every store pages through this."""

    number: int  # 1-based, within the dataset
    size: int
    start: int  # 0-based, inclusive
    stop: int  # exclusive

    @classmethod
    def of(cls, rows: int, number: int, size: int) -> PageWindow:
        size = max(1, size)
        number = min(max(1, number), max(1, -(-rows // size)))
        start = (number - 1) * size
        return cls(number, size, start, min(start + size, rows))


@dataclass(frozen=True)
class Page:
    """Rows ``start`` (0-based, inclusive) to ``start + len(rows)`` of a dataset, as display strings."""

    dataset: DatasetMeta
    number: int  # 1-based page number
    size: int
    start: int
    rows: tuple[tuple[str, ...], ...]
    sort: SortSpec | None = None

    @property
    def end(self) -> int:
        return self.start + len(self.rows)

    @property
    def pages(self) -> int:
        return max(1, -(-self.dataset.rows // self.size))

    @property
    def has_next(self) -> bool:
        return self.end < self.dataset.rows

    @property
    def has_prev(self) -> bool:
        return self.number > 1


@dataclass(frozen=True)
class ChartSpec:
    kind: ChartKind
    x: str
    y: str | None = None


#: Chart kinds a platform may draw itself (Slack's ``data_visualization``): ours map onto two of them.
NativeChartKind = Literal["bar", "line", "area", "pie"]


@dataclass(frozen=True)
class ChartSeries:
    """One named series: a finite value per category, in the categories' order."""

    name: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class ChartData:
    """A chart small enough to send as data (at most ``bot.datasets.aggregates.MAX_CATEGORIES``
    categories) for a platform to draw itself; labels are display strings, not yet fitted to any
    platform's limits."""

    kind: NativeChartKind
    title: str
    categories: tuple[str, ...]
    series: tuple[ChartSeries, ...]
    x_label: str = ""
    y_label: str = ""


class DatasetError(Exception):
    """A dataset request that cannot be served; ``str(err)`` is a short message fit for the user."""


class DatasetNotFound(DatasetError):
    pass


class DatasetExpired(DatasetError):
    pass


class DatasetStore(Protocol):
    """Registers tabular results and serves pages, sorted pages, charts and exports.

    Access control is the caller's job (the engine checks thread and user before calling);
    ``get`` raises ``DatasetNotFound`` for unknown ids and ``DatasetExpired`` once retention ends.
    ``page`` costs the same for any page number and any dataset size.
    """

    async def register_frame(
        self, frame: pd.DataFrame, *, name: str, thread: ThreadKey, owner: str, source: str | None = None
    ) -> DatasetMeta: ...

    async def register_file(
        self, path: Path, *, name: str, thread: ThreadKey, owner: str
    ) -> DatasetMeta | None:
        """Register a csv / tsv / parquet / jsonl / xlsx / arrow file; ``None`` if it is not tabular."""
        ...

    async def get(self, dataset_id: str) -> DatasetMeta: ...

    async def list(self, thread: ThreadKey) -> Sequence[DatasetMeta]:
        """Live (unexpired) datasets of a thread, oldest first."""
        ...

    async def page(self, dataset_id: str, number: int, size: int, sort: SortSpec | None = None) -> Page: ...

    async def chart(self, dataset_id: str, spec: ChartSpec, out: Path) -> Path:
        """Draw ``spec`` as a PNG at ``out`` (downsampled for large data) and return the path."""
        ...

    async def chart_data(self, dataset_id: str, spec: ChartSpec) -> ChartData | None:
        """``spec`` as data when it is a small aggregate (a bar of at most 20 groups, a line of at
        most 20 rows; ``bot.datasets.aggregates``), else ``None``: then only ``chart``'s PNG shows it.
        Raises ``DatasetError`` for a spec ``chart`` would refuse."""
        ...

    async def export(self, dataset_id: str, fmt: ExportFormat, out: Path, sort: SortSpec | None = None) -> Path:
        """Write the whole dataset to ``out`` (in ``sort`` order if given) and return the path."""
        ...

    async def sweep(self, now: datetime | None = None) -> int:
        """Delete expired datasets from disk and catalogue; return how many were removed."""
        ...

    async def aclose(self) -> None: ...
