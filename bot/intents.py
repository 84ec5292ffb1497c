"""The intent vocabulary: everything a button, a menu choice or a file link can ask the bot to do.

An intent is inert data (a frozen dataclass); ``Intent`` is their closed union. Buttons carry an
intent sealed into a token (``bot.intent_tokens``), typed commands parse into intents or into
relative commands resolved against the thread's last view (``bot.commands``), and one exhaustive
``match`` carries them out (``bot.actions``). Columns are named by their index in the dataset, so a
sealed intent stays small whatever the column names are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.datasets.model import ChartKind, ExportFormat
from bot.messages import ThreadKey


@dataclass(frozen=True)
class ColumnOrder:
    """Rows ordered by the dataset column at ``column`` (its index), ascending unless ``descending``."""

    column: int
    descending: bool = False


#: Columns one dataset page shows: Slack's table block holds 20, and 20 columns of a full page fit
#: one message on every surface (wider datasets page through their columns as well as their rows).
COLUMNS_PER_PAGE = 20


@dataclass(frozen=True)
class ShowPage:
    """Show page ``page`` (from 1) of a dataset, optionally sorted; ``columns`` (from 1) is which
    block of columns a wide dataset shows (``COLUMNS_PER_PAGE`` at a time)."""

    dataset: str
    page: int
    sort: ColumnOrder | None = None
    columns: int = 1


@dataclass(frozen=True)
class DrawChart:
    """Draw a chart of a dataset; ``x`` and ``y`` are column indices."""

    dataset: str
    kind: ChartKind
    x: int
    y: int | None = None


@dataclass(frozen=True)
class Download:
    """Export the whole dataset as a file and post it."""

    dataset: str
    format: ExportFormat


@dataclass(frozen=True)
class ListFiles:
    """List the thread's workspace with sizes."""


@dataclass(frozen=True)
class PostFile:
    """Post one workspace file into the thread; ``key`` is ``file_key`` of its workspace path."""

    key: str


#: What a file link is for: a download link (channels, group chats) or a consent offer (personal chats).
LinkPurpose = Literal["download", "consent"]


@dataclass(frozen=True)
class FileLink:
    """Open a workspace file from a link (Teams): a download link, or the context of a consent offer.

    ``conversation`` is the conversation id the file belongs to (a ``new`` conversation in the same
    chat voids the link), ``path`` is relative to its workspace and ``expires`` is a Unix time.
    """

    conversation: str
    path: str
    expires: int
    purpose: LinkPurpose = "download"


@dataclass(frozen=True)
class Stop:
    """Cancel the thread's running turn."""


@dataclass(frozen=True)
class Feedback:
    """A reader's verdict on one answer of the thread (thumbs up or down).

    ``turn`` names the answer (``""``: the thread's latest one, as a typed ``good`` means);
    ``comment`` is what the reader added (typed ``bad too slow``; buttons carry none).
    """

    positive: bool
    turn: str = ""
    comment: str = ""


@dataclass(frozen=True)
class OpenWorkspace:
    """Give the conversation's owner (privately) a link to its workspace page in the browser."""


@dataclass(frozen=True)
class RevokeWorkspace:
    """Void every earlier workspace link and browser session of the conversation (owner only)."""


Intent = (ShowPage | DrawChart | Download | ListFiles | PostFile | FileLink | Stop | Feedback | OpenWorkspace
          | RevokeWorkspace)

#: Every intent class with the kind name buttons and action ids carry (one source of truth).
KINDS: dict[type[Intent], str] = {
    ShowPage: "page",
    DrawChart: "chart",
    Download: "download",
    ListFiles: "files",
    PostFile: "file",
    FileLink: "link",
    Stop: "stop",
    Feedback: "feedback",
    OpenWorkspace: "workspace",
    RevokeWorkspace: "revoke",
}
#: Kinds a click may still name: every intent kind, plus ``sort`` for Sort menus posted before
#: kinds were derived from intents (their tokens then fail to open, with a notice, not silence).
CLICK_KINDS: frozenset[str] = frozenset(KINDS.values()) | {"sort"}


@dataclass(frozen=True)
class WebPass:
    """What a workspace link or browser session grants (not an intent: sealed on its own).

    The workspace and datasets of conversation ``conversation`` (of ``thread``) to ``owner``, while
    the conversation's link generation is still ``generation`` (``workspace revoke`` moves it on)
    and until ``expires`` (a Unix time).
    """

    thread: ThreadKey
    conversation: str
    owner: str
    generation: int
    expires: int


#: A pass travels as a link (to be exchanged once for a session) or as a session cookie.
PassUse = Literal["link", "session"]


def kind_of(intent: Intent) -> str:
    """The kind name of an intent (``page``, ``chart``, ...), as platform action ids carry it."""
    return KINDS[type(intent)]
