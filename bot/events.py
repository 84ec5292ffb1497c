"""Agent events: the closed, inert vocabulary every agent backend streams for a turn.

Events carry data only and never do I/O. ``step`` groups the parts of one agent step (Bedrock's
``traceId``) so a front end can show steps; backends without steps leave it ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bot.datasets.model import DatasetMeta


@dataclass(frozen=True)
class Rationale:
    """Why the agent is about to act (model text before a tool call, Bedrock rationale).

    Adjacent pieces of one step are concatenated as they stream; a backend starts a new paragraph by
    beginning the piece with a blank line.
    """

    text: str
    step: str | None = None


@dataclass(frozen=True)
class CodeStarted:
    """The agent runs this code now."""

    code: str
    language: str = "python"
    step: str | None = None


@dataclass(frozen=True)
class CodeOutput:
    """A piece of output of the running code, appended in order (streams may interleave)."""

    text: str
    stream: Literal["stdout", "stderr"] = "stdout"
    step: str | None = None


@dataclass(frozen=True)
class CodeError:
    """The code failed: exception type, message and the relevant traceback lines (no ANSI)."""

    ename: str
    evalue: str
    traceback: str = ""
    step: str | None = None


@dataclass(frozen=True)
class FileProduced:
    """A file now in the conversation workspace (``path`` is absolute, inside the workspace)."""

    path: Path
    name: str
    size: int
    media_type: str = "application/octet-stream"
    step: str | None = None


@dataclass(frozen=True)
class DatasetProduced:
    """A tabular result registered as a dataset."""

    dataset: DatasetMeta
    step: str | None = None


@dataclass(frozen=True)
class Notice:
    """Something the user should know that is not code output: a time-out, a guardrail, a limit."""

    text: str
    level: Literal["info", "warning", "error"] = "info"
    step: str | None = None


@dataclass(frozen=True)
class FinalText:
    """A piece of the final answer (Markdown). Pieces are concatenated in order."""

    text: str


@dataclass(frozen=True)
class TurnFailed:
    """The turn cannot go on. ``message`` is short and tells the user what to do; details go to logs."""

    message: str
    retryable: bool = False


AgentEvent = (
    Rationale | CodeStarted | CodeOutput | CodeError | FileProduced | DatasetProduced | Notice | FinalText
    | TurnFailed
)
