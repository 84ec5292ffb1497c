"""The agents a workflow step's turn runs with: code on the executor, or the configured agent after the
step's inputs were loaded into the executor as variables.

Both are ``AgentBackend``s so a step runs through ``Engine.run_turn`` like any chat turn (live
message, uploads, dataset pages) and nothing of the turn machinery is copied here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import PurePosixPath

from bot.agents.backend import AgentBackend, CodeExecutor
from bot.conversation import Conversation, Turn
from bot.events import AgentEvent, CodeError, CodeStarted, TurnFailed

#: Where a step's input datasets are, relative to its workspace.
INPUTS_DIR = "inputs"


@asynccontextmanager
async def _closing(events: AsyncIterator[AgentEvent]) -> AsyncIterator[AsyncIterator[AgentEvent]]:
    """Close an event stream when leaving (a stopped step interrupts its code at once)."""
    try:
        yield events
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()


def input_file(dataset: str) -> str:
    """The workspace-relative path of an input dataset's Parquet file."""
    return str(PurePosixPath(INPUTS_DIR) / f"{dataset}.parquet")


def preload_code(datasets: Sequence[str], params: Mapping[str, str]) -> str:
    """Python that binds each input dataset to a variable of its name, and ``params`` to a dict."""
    lines = ["import pandas as __dt_pd"]
    lines += [f"{name} = __dt_pd.read_parquet({input_file(name)!r})" for name in datasets]
    lines += [f"params = {json.dumps(dict(params))}", "del __dt_pd"]
    return "\n".join(lines)


async def _preload(executor: CodeExecutor, turn: Turn, code: str) -> str | None:
    """Run ``code`` without showing it; the reason it failed, or ``None``."""
    async with _closing(executor.execute(turn, code)) as events:
        async for event in events:
            match event:
                case CodeError(ename=ename, evalue=evalue):
                    return f"loading the inputs failed: {ename}: {evalue}"
                case TurnFailed(message=message):
                    return message
                case _:
                    pass
    return None


class CodeStepAgent:
    """A ``run`` step: the inputs are loaded, then ``code`` runs on ``executor`` exactly as written."""

    name = "workflow code"

    def __init__(self, executor: CodeExecutor, code: str, preload: str) -> None:
        self.executor = executor
        self.code = code
        self.preload = preload

    async def run(self, turn: Turn) -> AsyncIterator[AgentEvent]:
        failed = await _preload(self.executor, turn, self.preload)
        if failed is not None:
            yield TurnFailed(failed)
            return
        yield CodeStarted(self.code)
        async with _closing(self.executor.execute(turn, self.code)) as events:
            async for event in events:
                yield event

    async def release(self, conversation: Conversation) -> None:
        await self.executor.release(conversation)

    async def aclose(self) -> None:
        return None  # the executor belongs to the engine's agent


class PreloadedAgent:
    """An ``ask`` step on an agent with a Python executor: the inputs become variables, then ``agent``
    answers the prompt."""

    def __init__(self, agent: AgentBackend, executor: CodeExecutor, preload: str) -> None:
        self.agent = agent
        self.executor = executor
        self.preload = preload
        self.name = agent.name

    async def run(self, turn: Turn) -> AsyncIterator[AgentEvent]:
        failed = await _preload(self.executor, turn, self.preload)
        if failed is not None:
            yield TurnFailed(failed)
            return
        async with _closing(self.agent.run(turn)) as events:
            async for event in events:
                yield event

    async def release(self, conversation: Conversation) -> None:
        await self.agent.release(conversation)

    async def aclose(self) -> None:
        return None  # the engine closes its own agent
