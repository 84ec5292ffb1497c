"""The dataset store as one conversation sees it: registration bound to its thread and owner."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot.datasets.model import DatasetMeta, DatasetStore

if TYPE_CHECKING:
    import pandas as pd

    from bot.conversation import Conversation


class ThreadDatasets:
    """``DatasetRegistrar`` for one conversation: what the engine hands an agent backend each turn."""

    def __init__(self, store: DatasetStore, conversation: Conversation) -> None:
        self._store = store
        self._conversation = conversation

    async def register_frame(self, frame: pd.DataFrame, name: str, source: str | None = None) -> DatasetMeta:
        c = self._conversation
        return await self._store.register_frame(frame, name=name, thread=c.key, owner=c.owner, source=source)

    async def register_file(self, path: Path, name: str) -> DatasetMeta | None:
        c = self._conversation
        return await self._store.register_file(path, name=name, thread=c.key, owner=c.owner)

    async def list(self) -> Sequence[DatasetMeta]:
        return await self._store.list(self._conversation.key)
