"""The neutral reply model: what a message shows, before any platform renders it.

Presenters build these from events and dataset pages; renderers (``renderers/``) turn them into
terminal text, Slack blocks or Teams cards. Cells and text are already display strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.messages import ActionKind

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
    label: str
    token: str


@dataclass(frozen=True)
class Button:
    label: str
    action: ActionKind
    token: str
    style: Literal["default", "primary"] = "default"


@dataclass(frozen=True)
class Select:
    """A choice among options, each carrying its own token (Sort by column, Chart kind and columns)."""

    label: str
    action: ActionKind
    options: tuple[Option, ...]


@dataclass(frozen=True)
class Buttons:
    items: tuple[Button | Select, ...]


@dataclass(frozen=True)
class Notice:
    text: str
    level: Level = "info"


Block = Markdown | Status | CodeBlock | Table | Buttons | Notice


@dataclass(frozen=True)
class Reply:
    """One message. ``summary`` is plain text for notifications and clients that cannot render blocks."""

    blocks: tuple[Block, ...]
    summary: str = ""


def notice(text: str, level: Level = "info") -> Reply:
    """A one-block reply: the usual shape of an error or help message."""
    return Reply((Notice(text, level),), text)
