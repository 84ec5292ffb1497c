"""The Bedrock Converse agent: a model on Bedrock decides what code to run; an executor runs it.

One turn is a loop of model rounds. Each round streams ``converse_stream``; if the model asks for
tools (``stopReason`` ``tool_use``), every call runs in the conversation's ``CodeExecutor`` and its
results go back as ``toolResult`` blocks, up to ``max_tool_rounds`` rounds.

Text shown while streaming. The model's text before a tool call is rationale, the text of its
last response is the answer, and which one a piece of text is becomes known only when a tool call
starts or the message ends. So each response's text is held back until either a tool call starts
(the held text becomes one ``Rationale``), the message ends (it becomes ``FinalText``), or it grows
past ``rationale_holdback_chars``: from then on it is taken as the answer and streams token by
token as ``FinalText`` deltas. Rationale is short in practice, so the answer appears after a brief
hold and then streams; the rare long preamble before a tool call is shown as answer text.

Why hold back rather than guess. Events cannot be retracted: text shown as the answer stays the
answer, and text shown as rationale cannot become it. Holding a response's first
``rationale_holdback_chars`` (~60 tokens, about a second at usual model speeds) costs little — the
turn message says "Working…" meanwhile, and the platforms coalesce updates to about one a second
anyway — and a preamble before a tool call (one or two sentences in practice) is then shown where
it belongs, before its code. Answers shorter than that arrive whole, the moment they end.

Reasoning content is never the answer, so it streams as it arrives: each reasoning block is one
``Rationale`` paragraph whose later pieces continue it (the presenter joins adjacent ``Rationale``
events; separate paragraphs are given a blank line between them here).

History. The conversation's messages are stored in the ``StateStore`` (namespace
``converse-history``, key = conversation id) once the turn ends, trimmed to the token budget from
the oldest whole exchange. A failed or cancelled turn is stored too, closed by
``history.close_turn`` so roles alternate and every tool call has a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from bot.agents.aws import StreamFailed, ThreadedStream, aws_client, backoff_delay
from bot.agents.backend import CodeExecutor
from bot.agents.converse.config import ConverseConfig
from bot.agents.converse.doctor import diagnose
from bot.agents.converse.errors import model_problem
from bot.agents.converse.history import Message, close_turn, is_valid, sanitize, trim
from bot.agents.converse.prompt import (
    LIST_FILES,
    PUBLISH_DATASET,
    RUN_PYTHON,
    RUN_SHELL,
    TOOL_SPECS,
    ToolOutcome,
    system_prompt,
    user_message,
)
from bot.agents.converse.response import NO_ANSWER, More, Response, Shown
from bot.config import AgentKind, ConfigError, GatewaySettings
from bot.conversation import Conversation, Turn
from bot.conversation_moves import keeps_variables_here
from bot.events import AgentEvent, CodeError, CodeStarted, DatasetProduced, FinalText, Notice, Rationale, TurnFailed
from bot.workspace import UnsafePath, human_size

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.storage.base import StateStore

log = logging.getLogger(__name__)

__all__ = ["HISTORY_NAMESPACE", "ConverseAgent", "ConverseConfig", "diagnose"]

HISTORY_NAMESPACE = "converse-history"


class ConverseAgent:
    """``AgentBackend`` on Bedrock ``converse_stream`` with tool use; code runs in ``executor``."""

    name: str = AgentKind.CONVERSE

    def __init__(self, config: ConverseConfig, executor: CodeExecutor, state: StateStore) -> None:
        self.config = config
        self.executor = executor
        self.state = state
        #: Variables stay on this replica only when the executor's kernels do (``bot.conversation_moves``).
        self.variables_here = keeps_variables_here(executor)
        self._client: Any = None
        self._client_lock = asyncio.Lock()

    @classmethod
    def from_env(cls, settings: Settings, env: Mapping[str, str], state: StateStore) -> ConverseAgent:
        """The agent with the executor ``DATATHREAD_EXECUTOR`` picks; raises ``ConfigError``."""
        config = ConverseConfig.from_env(env)
        executor: CodeExecutor
        if config.executor == "agentcore":
            from bot.agents.agentcore.executor import AgentCoreExecutor

            executor = AgentCoreExecutor.from_config(config, state)
        elif config.executor == "gateway":
            from bot.agents.gateway.executor import GatewayExecutor

            gateway = settings.gateway or GatewaySettings.from_env(env)
            if gateway is None:
                raise ConfigError("DATATHREAD_EXECUTOR=gateway needs JUPYTER_GATEWAY_URL")
            executor = GatewayExecutor(settings, gateway, state)
        else:
            from bot.agents.kernel.agent import LocalKernelExecutor  # type: ignore[import-not-found,unused-ignore]

            executor = LocalKernelExecutor(settings)
        return cls(config, executor, state)

    async def _runtime(self) -> Any:
        async with self._client_lock:
            if self._client is None:
                # Building a client reads files and the endpoint ruleset: keep it off the loop. No SDK
                # retries: throttling is retried by the loop, which knows whether anything was shown.
                self._client = await asyncio.to_thread(
                    aws_client, "bedrock-runtime", region=self.config.region,
                    read_timeout=self.config.read_timeout, connect_timeout=self.config.connect_timeout,
                )
            return self._client

    # -- the turn -------------------------------------------------------------------------------

    async def run(self, turn: Turn) -> AsyncIterator[AgentEvent]:
        """The turn's events; see the module doc. Closing the iterator stores the history first."""
        previous: AgentEvent | None = None
        async with contextlib.aclosing(self._turn(turn)) as events:
            async for shown in events:
                event = Rationale(shown.text) if isinstance(shown, More) else shown
                if isinstance(shown, Rationale) and isinstance(previous, Rationale):
                    # The presenter joins adjacent Rationale events into one paragraph (made for
                    # streamed deltas). A Rationale here starts a new paragraph (text after
                    # reasoning, or a round after list_files that showed nothing): keep them apart.
                    event = Rationale("\n\n" + shown.text, shown.step)
                previous = event
                yield event

    async def _turn(self, turn: Turn) -> AsyncGenerator[Shown, None]:
        conversation = turn.conversation
        history = sanitize(await self.state.get_value(HISTORY_NAMESPACE, conversation.id))
        messages: list[Message] = [user_message(turn)]
        system = await system_prompt(turn, displays_frames=self.config.executor in ("local", "gateway"))
        completed = False
        reason = "it was cancelled"
        answered = [False]  # a FinalText was shown this turn (later answer text needs a gap)
        try:
            for round_number in range(self.config.max_tool_rounds + 1):
                if round_number == self.config.max_tool_rounds:
                    reason = f"the limit of {self.config.max_tool_rounds} tool rounds was reached"
                    yield TurnFailed(
                        f"I stopped after {self.config.max_tool_rounds} rounds of running code without "
                        "finishing. Ask again with a narrower question, or continue from here.",
                        retryable=True,
                    )
                    return
                response = Response(self.config.rationale_holdback_chars, answered)
                request = self._request(system, trim(history + messages, self.config.history_tokens))
                async with contextlib.aclosing(self._model_round(request, response)) as shown:
                    async for event in shown:
                        yield event
                if response.problem is not None:
                    reason = response.problem.message
                    yield TurnFailed(response.problem.message, retryable=response.problem.retryable)
                    return
                wants_tools = response.stop_reason == "tool_use" and bool(response.tool_uses())
                messages.append(response.message(with_tools=wants_tools))
                if not wants_tools:
                    async for event in self._finish(response):
                        yield event
                    completed = True
                    return
                results: list[dict[str, Any]] = []
                for tool_use in response.tool_uses():
                    outcome = ToolOutcome()
                    async for event in self._run_tool(turn, tool_use, outcome):
                        yield event
                    if outcome.failed is not None:
                        reason = outcome.failed.message
                        yield outcome.failed
                        return
                    results.append({"toolResult": {
                        "toolUseId": tool_use["toolUseId"],
                        "status": outcome.status,
                        "content": [{"text": outcome.summary(self.config.tool_result_chars)}],
                    }})
                messages.append({"role": "user", "content": results})
        finally:
            await self._save(conversation, history, messages, completed, reason)

    def _request(self, system: str, messages: list[Message]) -> dict[str, Any]:
        return {
            "modelId": self.config.model_id,
            "messages": messages,
            "system": [{"text": system}],
            "inferenceConfig": {"maxTokens": self.config.max_tokens},
            "toolConfig": {"tools": TOOL_SPECS},
        }

    async def _finish(self, response: Response) -> AsyncIterator[AgentEvent]:
        if response.stop_reason == "max_tokens":
            yield Notice("The answer was cut off at the length limit (BEDROCK_MAX_TOKENS).", "warning")
        elif response.stop_reason in ("guardrail_intervened", "content_filtered"):
            yield Notice("The answer was blocked by a content filter.", "warning")
        if not response.answered[0]:
            yield FinalText(NO_ANSWER)

    async def _model_round(self, request: dict[str, Any], response: Response) -> AsyncGenerator[Shown, None]:
        """Stream one model response into ``response``, yielding what is shown; retries throttling
        with bounded exponential backoff while nothing of this response was shown."""
        attempt = 0
        while True:
            shown = False
            response.reset()
            try:
                async with contextlib.aclosing(self._stream_once(request, response)) as events:
                    async for event in events:
                        shown = True
                        yield event
                return
            except Exception as exc:
                error = exc.error if isinstance(exc, StreamFailed) else exc
                problem = model_problem(error, read_timeout=self.config.read_timeout)
                if problem is None:
                    raise error from None
                log.warning("bedrock converse_stream failed (%s, attempt %d): %s", problem.code, attempt + 1,
                            problem.detail[:500] or type(error).__name__)
                if problem.retry and not shown and attempt < self.config.throttle_retries:
                    await asyncio.sleep(backoff_delay(attempt, self.config.backoff_seconds))
                    attempt += 1
                    continue
                response.problem = problem
                return

    async def _stream_once(self, request: dict[str, Any], response: Response) -> AsyncGenerator[Shown, None]:
        client = await self._runtime()
        with ThreadedStream(lambda: client.converse_stream(**request)["stream"], name="converse-stream") as stream:
            async for raw in stream:
                for shown in response.feed(raw):
                    yield shown
        for shown in response.end():
            yield shown

    # -- tools ----------------------------------------------------------------------------------

    async def _run_tool(
        self, turn: Turn, tool_use: dict[str, Any], outcome: ToolOutcome
    ) -> AsyncIterator[AgentEvent]:
        name, args = tool_use["name"], tool_use["parsed"]
        if args is None:
            outcome.add(_tool_error("BadInput", "The tool input was not valid JSON; send a JSON object."))
            return
        if name in (RUN_PYTHON, RUN_SHELL):
            key, language = ("code", "python") if name == RUN_PYTHON else ("command", "shell")
            source = args.get(key)
            if not isinstance(source, str) or not source.strip():
                outcome.add(_tool_error("BadInput", f"{name} needs a non-empty string {key!r}."))
                return
            yield CodeStarted(source, language)
            async for event in self.executor.execute(turn, source, language=language):
                outcome.add(event)
                if not isinstance(event, TurnFailed):
                    yield event
        elif name == LIST_FILES:
            files = await turn.workspace.list_files()
            listing = "\n".join(f"{f.name}\t{human_size(f.size)}" for f in files[:500])
            outcome.stdout.append(listing or "(the workspace is empty)")
        elif name == PUBLISH_DATASET:
            async for event in self._publish(turn, args, outcome):
                yield event
        else:
            outcome.add(_tool_error("UnknownTool", f"There is no tool called {name!r}."))

    async def _publish(self, turn: Turn, args: dict[str, Any], outcome: ToolOutcome) -> AsyncIterator[AgentEvent]:
        raw_path = str(args.get("path", ""))
        try:
            path = turn.workspace.resolve(raw_path)
        except UnsafePath:
            outcome.add(_tool_error("BadPath", f"{raw_path} is outside the workspace."))
            return
        if not await asyncio.to_thread(path.is_file):
            outcome.add(_tool_error("FileNotFound", f"{raw_path} does not exist in the workspace."))
            return
        name = str(args.get("name") or path.stem)
        try:
            meta = await turn.datasets.register_file(path, name)
        except Exception as exc:
            log.warning("publish_dataset %s failed", raw_path, exc_info=True)
            outcome.add(_tool_error(type(exc).__name__, f"{raw_path} could not be read as a table: {exc}"))
            return
        if meta is None:
            outcome.add(_tool_error("NotTabular", f"{raw_path} is not a table file (csv, parquet, ...)."))
            return
        event = DatasetProduced(meta)
        outcome.add(event)
        yield event

    # -- history --------------------------------------------------------------------------------

    async def _save(
        self, conversation: Conversation, history: list[Message], messages: list[Message],
        completed: bool, reason: str,
    ) -> None:
        closed = messages if completed else close_turn(messages, reason)
        stored = trim(history + closed, self.config.history_tokens)
        if not is_valid(stored):  # a bug in the loop must not poison every later turn
            log.error("converse history for %s would be invalid; keeping the previous one", conversation.id)
            stored = history
        try:
            await self.state.put_value(HISTORY_NAMESPACE, conversation.id, stored)
        except Exception:
            log.exception("could not store converse history for %s", conversation.id)

    async def release(self, conversation: Conversation) -> None:
        await self.executor.release(conversation)

    async def aclose(self) -> None:
        """Close the executor and the Bedrock client (its pooled connections)."""
        await self.executor.aclose()
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


def _tool_error(ename: str, evalue: str) -> AgentEvent:
    return CodeError(ename=ename, evalue=evalue)
