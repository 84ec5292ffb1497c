"""The seam between the engine and agent backends (local kernel, Bedrock Agents, Converse)."""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bot.datasets.readers import TABULAR_SUFFIXES
from bot.events import AgentEvent, DatasetProduced, FileProduced, Notice
from bot.workspace import Workspace, WorkspaceFile

if TYPE_CHECKING:
    import pandas as pd

    from bot.datasets.model import DatasetMeta
    from bot.messages import ThreadKey

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Conversation:
    """One thread's agent conversation: stable ids, its owner and its workspace."""

    id: str
    key: ThreadKey
    session_id: str  # valid for Bedrock: ^[0-9a-zA-Z._:-]{2,100}$
    owner: str
    workspace: Path
    created: datetime
    last_active: datetime


@dataclass(frozen=True)
class Attachment:
    """A file the user attached to this turn, already saved in the workspace."""

    name: str  # the name the user gave it
    path: Path  # where it is in the workspace (sanitised name)
    size: int
    media_type: str


class DatasetRegistrar(Protocol):
    """Dataset registration scoped to the turn's thread and owner."""

    async def register_frame(self, frame: pd.DataFrame, name: str, source: str | None = None) -> DatasetMeta: ...

    async def register_file(self, path: Path, name: str) -> DatasetMeta | None: ...

    async def list(self) -> Sequence[DatasetMeta]: ...


@dataclass(frozen=True)
class Turn:
    """Everything a backend needs to run one turn."""

    conversation: Conversation
    text: str
    attachments: tuple[Attachment, ...]
    workspace: Workspace
    datasets: DatasetRegistrar


class AgentBackend(Protocol):
    """An agent that answers a turn as a stream of events.

    ``run`` yields events as they happen and ends after ``FinalText`` or ``TurnFailed``. It must not
    raise for problems a user can act on (yield ``TurnFailed`` instead). Cancelling the consuming task
    cancels the turn: the backend stops work (interrupts code, closes streams) in its ``finally``.
    """

    name: str

    def run(self, turn: Turn) -> AsyncIterator[AgentEvent]: ...

    async def release(self, conversation: Conversation) -> None:
        """Free per-conversation resources (kernels, sessions); the workspace stays."""
        ...

    async def aclose(self) -> None: ...


def media_type(path: Path | str) -> str:
    return mimetypes.guess_type(str(path))[0] or "application/octet-stream"


async def announce_files(turn: Turn, files: Sequence[WorkspaceFile]) -> AsyncIterator[AgentEvent]:
    """Events for new workspace files: ``FileProduced`` for each, then ``DatasetProduced`` if tabular.

    Shared by every backend so files become datasets the same way everywhere. A tabular file that
    cannot be parsed is still delivered as a file, with a notice.
    """
    for f in files:
        yield FileProduced(path=f.path, name=f.name, size=f.size, media_type=media_type(f.path))
        if f.path.suffix.lower() not in TABULAR_SUFFIXES:
            continue
        try:
            meta = await turn.datasets.register_file(f.path, Path(f.name).stem)
        except Exception as exc:  # a malformed file must not end the turn
            log.warning("could not register %s as a dataset", f.name, exc_info=True)
            yield Notice(f"{f.name} could not be read as a table ({type(exc).__name__}).", "warning")
            continue
        if meta is not None:
            yield DatasetProduced(meta)


class CodeExecutor(Protocol):
    """Where an agent's code runs for a conversation: the local kernel or an AgentCore session.

    ``execute`` yields ``CodeOutput``, ``CodeError``, ``Notice``, ``FileProduced`` and
    ``DatasetProduced`` (never ``CodeStarted``: the caller announces the code). New files and
    datasets come after the run's output, in the order they were produced. A failing run yields
    ``CodeError`` and returns normally; only an unusable environment yields ``TurnFailed``.
    """

    def execute(self, turn: Turn, code: str, *, language: str = "python") -> AsyncIterator[AgentEvent]: ...

    async def release(self, conversation: Conversation) -> None: ...

    async def aclose(self) -> None: ...
