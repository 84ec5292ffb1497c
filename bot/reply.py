"""The neutral reply model: what a message shows, before any platform renders it.

Presenters build these from events and dataset pages; renderers (``renderers/``) turn them into
terminal text, Slack blocks or Teams cards. Cells and text are already display strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.datasets.formatting import format_float
from bot.datasets.model import ChartData
from bot.intents import Intent, kind_of

Level = Literal["info", "warning", "error"]


@dataclass(frozen=True)
class Markdown:
    """CommonMark-ish text authored once; renderers convert it per platform, leaving code alone."""

    text: str


@dataclass(frozen=True)
class Status:
    """Where the turn is: working (with elapsed seconds), done or failed."""

    text: str
    state: Literal["working", "done", "failed"]
    elapsed: float | None = None


@dataclass(frozen=True)
class CodeBlock:
    """Code the agent ran, or its output / error. ``omitted`` counts lines cut from the middle or end."""

    text: str
    role: Literal["code", "output", "error"] = "code"
    language: str = ""
    title: str | None = None
    omitted: int = 0


@dataclass(frozen=True)
class Table:
    """A page of a dataset. ``numeric`` marks right-aligned columns."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...] = ()


@dataclass(frozen=True)
class Option:
    """One choice of a ``Select``: what it asks for and that intent sealed for the thread."""

    label: str
    intent: Intent
    token: str


@dataclass(frozen=True)
class Button:
    """A button: the intent it carries, sealed into ``token`` (what platforms send back on a click)."""

    label: str
    intent: Intent
    token: str
    style: Literal["default", "primary"] = "default"

    @property
    def kind(self) -> str:
        """The intent's kind name (``page``, ``download``, ...): what action ids carry."""
        return kind_of(self.intent)


@dataclass(frozen=True)
class Select:
    """A choice among options of one intent kind, each with its own token (Sort, Chart, a file)."""

    label: str
    options: tuple[Option, ...]

    def __post_init__(self) -> None:
        if len({kind_of(o.intent) for o in self.options}) > 1:
            raise ValueError("the options of one select carry intents of one kind")

    @property
    def kind(self) -> str:
        """The kind name its options share (``""`` for an empty select)."""
        return kind_of(self.options[0].intent) if self.options else ""


@dataclass(frozen=True)
class Buttons:
    """A row of controls. ``shown`` is the intent whose result the message shows (the current page),
    so a renderer can describe relative controls (the console's ``[n]ext`` / ``[p]rev`` hint)."""

    items: tuple[Button | Select, ...]
    shown: Intent | None = None


@dataclass(frozen=True)
class Notice:
    text: str
    level: Level = "info"


@dataclass(frozen=True)
class Chart:
    """A small chart sent as data for the platform to draw (Slack's ``data_visualization``). Only
    surfaces with ``native_charts`` are sent one; other renderers show its numbers as a table."""

    data: ChartData

    def table(self) -> Table:
        """The chart's numbers: a row per category, a column per series."""
        d = self.data
        columns = (d.x_label or "category", *(s.name for s in d.series))
        rows = tuple((c, *(format_float(s.values[i]) for s in d.series)) for i, c in enumerate(d.categories))
        return Table(columns, rows, (False, *(True for _ in d.series)))


Block = Markdown | Status | CodeBlock | Table | Chart | Buttons | Notice

StepStatus = Literal["pending", "in_progress", "complete", "error"]


@dataclass(frozen=True)
class Step:
    """One agent step, for surfaces that show steps as tasks of their own (Slack's task chunks).

    ``blocks`` are the indices in ``Reply.blocks`` the step is made of (its rationale, code, output,
    error): a surface showing the step as a task leaves them out of its text; others ignore steps.
    """

    id: str
    title: str
    status: StepStatus
    details: str = ""
    output: str = ""
    blocks: tuple[int, ...] = ()


@dataclass(frozen=True)
class Reply:
    """One message. ``summary`` is plain text for notifications and clients that cannot render blocks.
    ``steps`` group a turn's blocks into agent steps (``bot.steps``); empty for other replies."""

    blocks: tuple[Block, ...]
    summary: str = ""
    steps: tuple[Step, ...] = ()


def notice(text: str, level: Level = "info") -> Reply:
    """A one-block reply: the usual shape of an error or help message."""
    return Reply((Notice(text, level),), text)
