"""A scripted agent backend: plays a fixed list of events per turn, with optional delays.

It stands in for the remote agent service (Bedrock) when a test is about a surface, not an agent.
Files named in a script are written into the real workspace and announced the way every backend
announces them (``announce_files``), so datasets are registered for real. The tests and the
benchmarks both use it, so it lives with the other backends rather than in ``tests/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from bot.agents.backend import announce_files
from bot.conversation import Conversation, Turn
from bot.events import AgentEvent


@dataclass(frozen=True)
class WriteFile:
    """Script step: write ``data`` to ``name`` in the workspace, then announce it."""

    name: str
    data: bytes


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Wait:
    """Script step: hold the turn until ``gate`` is set (a test looks at what a run left behind
    while the next one is still going)."""

    gate: asyncio.Event


@dataclass(frozen=True)
class Raise:
    """Script step: the backend crashes (a bug, not a user-facing failure)."""

    error: Exception


Step = AgentEvent | WriteFile | Sleep | Wait | Raise


@dataclass
class ScriptedAgent:
    """``script(turn)`` returns the steps of that turn; ``turns`` records what it was asked
    (unless ``record`` is off: a long-running ``serve`` must not keep every turn)."""

    script: Callable[[Turn], Sequence[Step]]
    name: str = "scripted"
    turns: list[Turn] = field(default_factory=list)
    record: bool = True

    async def run(self, turn: Turn) -> AsyncIterator[AgentEvent]:
        if self.record:
            self.turns.append(turn)
        for step in self.script(turn):
            match step:
                case Sleep(seconds):
                    await asyncio.sleep(seconds)
                case WriteFile(name, data):
                    path = turn.workspace.ensure().resolve(name)
                    path.write_bytes(data)
                    files = [f for f in turn.workspace.files() if f.path == path]
                    async for event in announce_files(turn, files):
                        yield event
                case Wait(gate):
                    await gate.wait()
                case Raise(error):
                    raise error
                case _:
                    yield step

    async def release(self, conversation: Conversation) -> None:
        return None

    async def aclose(self) -> None:
        return None
