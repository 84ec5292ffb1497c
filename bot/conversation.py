"""Domain types: a conversation, one turn of it, and the files a user attached.

Storage, datasets, the engine, every agent backend and the adapters share these; they know no
platform and no backend.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bot.workspace import Workspace

if TYPE_CHECKING:
    import pandas as pd

    from bot.datasets.model import DatasetMeta
    from bot.messages import ThreadKey


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


def media_type(path: Path | str) -> str:
    return mimetypes.guess_type(str(path))[0] or "application/octet-stream"
