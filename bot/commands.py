"""Typed commands (``next``, ``sort revenue desc in sales``, ``files``, ...) as data, without I/O.

``parse_command`` turns a message into a ``Command`` or ``None`` (the text is for the agent).
Commands must look like commands, so "sort the table by revenue" stays prose. Dataset commands are
relative: ``next`` means "the page after the one this thread looked at last", so they parse to an
``OnDataset`` that ``resolve`` turns into an intent once the thread's last view and the dataset's
columns are known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import assert_never

from bot.datasets.model import CHART_KINDS, ChartKind, DatasetError, DatasetMeta, ExportFormat
from bot.intents import (
    COLUMNS_PER_PAGE,
    ColumnOrder,
    Download,
    DrawChart,
    Feedback,
    Intent,
    ListFiles,
    OpenWorkspace,
    RevokeWorkspace,
    ShowPage,
    Stop,
)


@dataclass(frozen=True)
class Step:
    """Move ``by`` pages from the last view (``next`` is +1, ``prev`` is -1)."""

    by: int


@dataclass(frozen=True)
class GoTo:
    """Go to page ``page`` keeping the last view's order."""

    page: int


@dataclass(frozen=True)
class ColumnsTo:
    """``columns next`` / ``columns prev`` / ``columns N``: another block of a wide dataset's
    columns (``by`` blocks from the last view's, or block ``to``), same rows and order."""

    by: int = 0
    to: int | None = None


@dataclass(frozen=True)
class SortBy:
    """Sort by the column named ``column`` (exact name first, then case-insensitive), from page 1."""

    column: str
    descending: bool = False


@dataclass(frozen=True)
class ChartOf:
    """Chart columns named ``x`` (and ``y``)."""

    kind: ChartKind
    x: str
    y: str | None = None


@dataclass(frozen=True)
class DownloadAs:
    format: ExportFormat


Relative = Step | GoTo | ColumnsTo | SortBy | ChartOf | DownloadAs


@dataclass(frozen=True)
class OnDataset:
    """A relative dataset command; ``dataset`` is the name from a trailing ``in NAME``, if any."""

    action: Relative
    dataset: str | None = None


@dataclass(frozen=True)
class ShowHelp:
    """``help``: the list of commands."""


@dataclass(frozen=True)
class ListDatasets:
    """``datasets``: the thread's datasets."""


@dataclass(frozen=True)
class RunWorkflow:
    """``run NAME [k=v ...]``: run the workflow ``NAME`` in this thread with these parameters."""

    name: str
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ListWorkflows:
    """``workflows``: the workflows this bot can run."""


Command = (OnDataset | ShowHelp | ListDatasets | ListFiles | RunWorkflow | ListWorkflows | Stop | Feedback
           | OpenWorkspace | RevokeWorkspace)

_SIMPLE: dict[str, Command] = {"help": ShowHelp(), "files": ListFiles(), "datasets": ListDatasets(),
                               "workflows": ListWorkflows(), "stop": Stop(),
                               "good": Feedback(True), "bad": Feedback(False),
                               "workspace": OpenWorkspace(), "workspace revoke": RevokeWorkspace()}
#: ``run NAME k=v ...``: a workflow name and parameters only, so "run the numbers again" stays prose.
_RUN = re.compile(r"run\s+([A-Za-z0-9][A-Za-z0-9_-]{0,63})((?:\s+[A-Za-z_][A-Za-z0-9_]*=\S*)*)", re.I)
#: ``bad`` followed by a comment: negative feedback on the thread's latest answer. ``good`` takes no
#: comment, so "good morning, load sales.csv" stays a message for the agent.
_VERDICT = re.compile(r"bad[\s:,-]+(\S.*)", re.I | re.S)
#: A trailing ``in NAME`` picks the dataset a command acts on.
_NAMED = re.compile(r"(.+?)\s+in\s+(\S+)", re.I)
_DESC = ("desc", "descending")
_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(next|n)", re.I), "next"),
    (re.compile(r"(prev(ious)?|p)", re.I), "prev"),
    (re.compile(r"page\s+(\d{1,9})", re.I), "page"),
    (re.compile(r"col(?:umn)?s\s+(next|n|prev(?:ious)?|p|\d{1,9})", re.I), "columns"),
    (re.compile(r"sort\s+(\S+)(?:\s+(asc|desc|ascending|descending))?", re.I), "sort"),
    (re.compile(r"chart\s+(" + "|".join(CHART_KINDS) + r")\s+(\S+)(?:\s+(\S+))?", re.I), "chart"),
    (re.compile(r"download(?:\s+(csv|parquet))?", re.I), "download"),
)


def parse_command(text: str) -> Command | None:
    """The command ``text`` spells, or ``None`` if it is a message for the agent."""
    stripped = text.strip()
    words = stripped.split()
    if not words:
        return None
    simple = " ".join(words).lower()
    if len(words) <= 2 and simple in _SIMPLE:
        return _SIMPLE[simple]
    run = _RUN.fullmatch(stripped)
    if run is not None:
        pairs = tuple(tuple(p.split("=", 1)) for p in run.group(2).split())
        return RunWorkflow(run.group(1), pairs)
    verdict = _VERDICT.fullmatch(stripped)
    if verdict is not None:
        return Feedback(False, comment=verdict.group(1).strip())
    named = _NAMED.fullmatch(stripped)
    body, dataset = (named.group(1), named.group(2)) if named else (stripped, None)
    for shape, name in _SHAPES:
        found = shape.fullmatch(body)
        if found is not None:
            return OnDataset(_relative(name, found), dataset)
    return None


def _relative(name: str, found: re.Match[str]) -> Relative:
    match name:
        case "next":
            return Step(1)
        case "prev":
            return Step(-1)
        case "page":
            return GoTo(max(1, int(found.group(1))))
        case "columns":
            where = found.group(1).lower()
            if where.isdigit():
                return ColumnsTo(to=max(1, int(where)))
            return ColumnsTo(by=1 if where.startswith("n") else -1)
        case "sort":
            return SortBy(found.group(1), (found.group(2) or "").lower() in _DESC)
        case "chart":
            kind = next(k for k in CHART_KINDS if k == found.group(1).lower())
            return ChartOf(kind, found.group(2), found.group(3))
        case _:
            return DownloadAs("parquet" if (found.group(1) or "").lower() == "parquet" else "csv")


def find_column(meta: DatasetMeta, name: str) -> int:
    """The index of the column called ``name`` (exact match first, then case-insensitive)."""
    names = [c.name for c in meta.columns]
    if name in names:
        return names.index(name)
    folded = [n.lower() for n in names]
    if name.lower() in folded:
        return folded.index(name.lower())
    raise DatasetError(f"No column {name!r} in {meta.name}. Columns: {', '.join(names)}")


def resolve(action: Relative, view: ShowPage, meta: DatasetMeta) -> Intent:
    """The intent ``action`` means for ``meta`` when the thread last looked at ``view`` of it.

    ``DatasetError`` (a user-facing message) for a column the dataset does not have.
    """
    match action:
        case Step(by=by):
            return ShowPage(meta.id, max(1, view.page + by), view.sort, view.columns)
        case GoTo(page=page):
            return ShowPage(meta.id, page, view.sort, view.columns)
        case ColumnsTo(by=by, to=to):
            return ShowPage(meta.id, view.page, view.sort, max(1, view.columns + by if to is None else to))
        case SortBy(column=column, descending=descending):
            index = find_column(meta, column)  # shown with the block of columns it is in
            return ShowPage(meta.id, 1, ColumnOrder(index, descending), index // COLUMNS_PER_PAGE + 1)
        case ChartOf(kind=kind, x=x, y=y):
            return DrawChart(meta.id, kind, find_column(meta, x), None if y is None else find_column(meta, y))
        case DownloadAs(format=fmt):
            return Download(meta.id, fmt)
        case _:
            assert_never(action)
