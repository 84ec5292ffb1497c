"""The seam between the engine and agent backends (local kernel, Bedrock Agents, Converse).

The domain types a backend works on (``Conversation``, ``Turn``, ``Attachment``) are in
``bot.conversation``; here are the contracts a backend and a code executor fulfil.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Protocol

from bot.conversation import Conversation, Turn, media_type
from bot.datasets.model import DatasetMeta
from bot.datasets.readers import TABULAR_SUFFIXES
from bot.events import AgentEvent, DatasetProduced, FileProduced, Notice
from bot.workspace import WorkspaceFile

log = logging.getLogger(__name__)


class AgentBackend(Protocol):
    """An agent that answers a turn as a stream of events.

    ``run`` yields events as they happen and ends after ``TurnFailed`` (exactly one, nothing after it)
    or, for an agent that answers in words, after its ``FinalText``; a backend that only runs the code
    it is sent (the local kernel) has no words to add and ends after that run's events. It must not
    raise for problems a user can act on (yield ``TurnFailed`` instead). Cancelling the consuming task
    cancels the turn: the backend stops work (interrupts code, closes streams) in its ``finally``.
    """

    name: str

    def run(self, turn: Turn) -> AsyncIterator[AgentEvent]: ...

    async def release(self, conversation: Conversation) -> None:
        """Free per-conversation resources (kernels, sessions); the workspace stays."""
        ...

    async def aclose(self) -> None: ...


def dataset_events(meta: DatasetMeta) -> list[AgentEvent]:
    """``DatasetProduced`` for a registered table, and a notice naming any columns left out."""
    events: list[AgentEvent] = [DatasetProduced(meta)]
    if meta.dropped:
        names = ", ".join(f'"{n}"' for n in meta.dropped)
        what = "columns" if len(meta.dropped) > 1 else "column"
        events.append(Notice(f"Dataset {meta.name}: left out {what} {names} (the values could not be stored, "
                             "not even as text).", "warning"))
    return events


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
            for event in dataset_events(meta):
                yield event


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
