"""Amazon Bedrock Agents backend: ``invoke_agent`` with the code interpreter, streamed as agent events.

One conversation is one Bedrock session (``Conversation.session_id``). boto3 is blocking, so each turn
runs the call and reads the event stream in a daemon thread that hands events to the event loop as
they arrive (``bot.agents.aws.ThreadedStream``); ``parse_event`` (pure) maps them, and ``_TurnState`` keeps what
spans the turn: the answer said once, files saved and announced once. Errors become ``TurnFailed``
with a message that says what to do; throttling before the agent showed anything is retried.
Cancelling the consuming task stops the thread's reads and closes the HTTP connection.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from bot.agents.aws import StreamFailed, ThreadedStream, aws_client, backoff_delay, is_throttling
from bot.agents.backend import announce_files
from bot.agents.bedrock_agents.config import BedrockAgentConfig, memory_id
from bot.agents.bedrock_agents.doctor import diagnose
from bot.agents.bedrock_agents.errors import turn_failed
from bot.agents.bedrock_agents.files import plan_attachments, session_files
from bot.agents.bedrock_agents.trace import (
    AnswerChunk,
    Failure,
    FilesArrived,
    FilesNamed,
    Parsed,
    TraceAnswer,
    dedupe_key,
    parse_event,
)
from bot.config import AgentKind
from bot.conversation import Conversation, Turn
from bot.events import AgentEvent, DatasetProduced, FileProduced, FinalText, Notice, TurnFailed
from bot.workspace import WorkspaceFile

if TYPE_CHECKING:
    from bot.config import Settings

__all__ = ["BedrockAgent", "BedrockAgentConfig", "diagnose"]

log = logging.getLogger(__name__)


class _TurnState:
    """What spans one turn: the answer (chunks win over the trace's final response), files seen, failures."""

    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.chunked = False
        self.trace_answer: str | None = None
        self.failure: Failure | None = None
        self.files: set[tuple[str, str]] = set()
        self.file_steps: dict[str, str | None] = {}  # generated file name -> the step that made it

    async def handle(self, item: Parsed) -> AsyncIterator[AgentEvent]:
        match item:
            case AnswerChunk(data):
                self.chunked = True
                text = self.decoder.decode(data)  # a multi-byte character may span chunks
                if text:
                    yield FinalText(text)
            case TraceAnswer(text):
                self.trace_answer = text
            case FilesNamed(names, step):
                self.file_steps.update(dict.fromkeys(names, step))
            case FilesArrived(files):
                for file in files:
                    key = dedupe_key(file)
                    if key in self.files:
                        log.info("file %s delivered again in the same turn; skipped", file.name)
                        continue
                    self.files.add(key)
                    path = await self.turn.workspace.write(file.name, file.data)
                    stat = await asyncio.to_thread(path.stat)
                    saved = WorkspaceFile(self.turn.workspace.relative(path), path, stat.st_size, stat.st_mtime_ns)
                    step = self.file_steps.get(file.name)
                    async for event in announce_files(self.turn, [saved]):
                        if step and isinstance(event, FileProduced | DatasetProduced | Notice):
                            event = dataclasses.replace(event, step=step)
                        yield event
            case Failure(reason, step):
                self.failure = item
                yield Notice(f"The agent reported a problem: {reason}", "error", step)
            case _:
                yield item

    def finish(self) -> AgentEvent:
        """The event that ends the turn once the stream ended normally."""
        tail = self.decoder.decode(b"", final=True)
        if self.chunked:
            return FinalText(tail)
        if self.trace_answer:
            return FinalText(self.trace_answer)
        if self.failure is not None:
            return TurnFailed("The agent stopped without an answer (see the problem above). Try again, "
                              "or rephrase the request.", retryable=True)
        return FinalText("_The agent finished without a written answer._")


class BedrockAgent:
    """``AgentBackend`` for an Amazon Bedrock agent (``invoke_agent``) with the code interpreter."""

    name: str = AgentKind.BEDROCK_AGENTS

    def __init__(self, config: BedrockAgentConfig) -> None:
        self.config = config
        self._client: Any = None
        self._client_lock = asyncio.Lock()

    @classmethod
    def from_env(cls, settings: Settings, env: Mapping[str, str]) -> BedrockAgent:
        """The backend configured by ``BEDROCK_AGENT_*`` (raises ``ConfigError`` naming a bad variable)."""
        del settings  # core settings (workspaces, datasets) reach the backend through each Turn
        return cls(BedrockAgentConfig.from_env(env))

    async def _runtime(self) -> Any:
        async with self._client_lock:
            if self._client is None:
                # We retry throttling ourselves, and only while nothing was shown: a blind SDK retry
                # could run the agent's code twice after a mid-turn failure.
                self._client = await asyncio.to_thread(
                    aws_client, "bedrock-agent-runtime", read_timeout=self.config.read_timeout,
                    connect_timeout=self.config.connect_timeout,
                    max_pool_connections=self.config.max_pool_connections,
                )
            return self._client

    def _request(self, turn: Turn, files: list[dict[str, Any]]) -> dict[str, Any]:
        request: dict[str, Any] = {
            "agentId": self.config.agent_id,
            "agentAliasId": self.config.alias_id,
            "sessionId": turn.conversation.session_id,
            "inputText": turn.text,
            "enableTrace": True,
        }
        if files:
            request["sessionState"] = {"files": files}
        if self.config.memory:
            request["memoryId"] = memory_id(turn.conversation.owner)
        if self.config.stream_final_response:
            request["streamingConfigurations"] = {"streamFinalResponse": True}
        return request

    async def run(self, turn: Turn) -> AsyncIterator[AgentEvent]:
        """Stream the turn's events; ends with ``FinalText`` or ``TurnFailed`` (see ``AgentBackend``)."""
        plan = plan_attachments(turn.attachments)
        for message in plan.rejected:
            yield Notice(message, "warning")
        try:
            request = self._request(turn, await session_files(plan))
            client = await self._runtime()
        except Exception as exc:  # unreadable attachment, no region: say so, do not crash the engine
            yield turn_failed(exc, read_timeout=self.config.read_timeout)
            return
        state = _TurnState(turn)
        # Retry only while the service has sent nothing at all: once the agent started (even with a
        # trace we do not show) its code may have run, and a second call could run it again.
        started = False
        for attempt in range(self.config.throttle_retries + 1):
            try:
                with ThreadedStream(lambda: client.invoke_agent(**request)["completion"],
                                    name="bedrock-agent-stream") as stream:
                    async for event in stream:
                        started = True
                        for item in parse_event(event):
                            async for out in state.handle(item):
                                yield out
            except StreamFailed as failed:
                if not started and is_throttling(failed.error) and attempt < self.config.throttle_retries:
                    delay = backoff_delay(attempt, self.config.backoff_seconds)
                    log.info("bedrock agent throttled; retry %d in %.1fs", attempt + 1, delay)
                    await asyncio.sleep(delay)
                    continue
                yield turn_failed(failed.error, read_timeout=self.config.read_timeout)
                return
            yield state.finish()
            return

    async def release(self, conversation: Conversation) -> None:
        """Nothing to free: the Bedrock session expires by itself; the workspace stays."""
        return None

    async def aclose(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
