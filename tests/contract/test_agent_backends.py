"""Every agent backend keeps the ``AgentBackend`` contract (``bot/agents/backend.py``).

One suite, run against each backend with its real client: the local kernel (real ipykernel), the
same agent with its kernels on a real Jupyter Enterprise Gateway (``tests/gateway_harness.py``),
Bedrock Agents (boto3 against ``tests/fakes/bedrock_agent_runtime.py``) and Converse (boto3 against
``tests/fakes/bedrock_runtime.py``, code run in ``tests/fakes/agentcore.py``). A new backend adds one
``Backend`` implementation and one entry in ``BACKENDS``; it then inherits every check here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pytest

from bot.agents.backend import AgentBackend
from bot.agents.bedrock_agents.agent import BedrockAgent, BedrockAgentConfig
from bot.agents.kernel.agent import LocalKernelAgent, LocalKernelExecutor
from bot.config import Settings
from bot.conversation import Attachment, Conversation, Turn, media_type
from bot.datasets.local import LocalDatasetStore
from bot.datasets.registrar import ThreadDatasets
from bot.events import AgentEvent, CodeOutput, CodeStarted, FinalText, Rationale, TurnFailed
from bot.messages import ThreadKey
from bot.storage.local import SqliteStateStore
from bot.workspace import Workspace
from tests.e2e.test_bedrock_agent import bedrock_agents_service
from tests.e2e.test_converse import Env, aws_env
from tests.fakes import bedrock_agent_runtime as fx
from tests.fakes.bedrock_agent_runtime import FakeBedrockAgents, PreStreamError
from tests.fakes.bedrock_runtime import Call, Fail, Hang, Say, Think, reply
from tests.gateway_harness import Gateway, gateway  # noqa: F401  (the session fixture)

pytestmark = pytest.mark.e2e  # kernels and local HTTP fakes

#: How long a backend may take to let go of a cancelled turn.
PROMPT_STOP_SECONDS = 5.0
CSV = b"n\n1\n2\n3\n"


class Backend(Protocol):
    """One backend under test and the means to script what its next turn does."""

    agent: AgentBackend
    #: The agent answers in words (a model); ``False`` for a backend that runs what it is sent.
    answers_in_words: bool

    async def turn(self, text: str, files: dict[str, bytes] | None = None) -> Turn:
        """A turn of the backend's conversation, with ``files`` saved in its workspace as attachments."""
        ...

    def will_answer(self, text: str) -> str:
        """Make the next turn answer ``text`` (where the answer is scripted); returns the user's message."""
        ...

    def will_run_code(self) -> str:
        """Make the next turn run some code and answer; returns the user's message."""
        ...

    def will_fail(self) -> str | None:
        """Make the next turn fail in a way the user can act on; ``None`` if it cannot be arranged."""
        ...

    def will_work_until_cancelled(self) -> str:
        """Make the next turn show progress (``Rationale`` or ``CodeOutput``), then keep working."""
        ...

    def will_read(self, name: str) -> str:
        """Make the next turn's code read the attachment ``name``; returns the user's message."""
        ...

    def received(self, events: Sequence[AgentEvent], name: str, data: bytes) -> bool:
        """Whether the attachment ``name`` with ``data`` reached the code or the agent's session files."""
        ...

    async def let_go(self) -> None:
        """Wait until the backend has dropped the cancelled turn's remote work (a no-op if it has none)."""
        ...


async def attached_turn(conversation: Conversation, store: LocalDatasetStore, text: str,
                        files: dict[str, bytes] | None) -> Turn:
    """A turn as the engine builds it: attachments are saved in the conversation's workspace first."""
    workspace = Workspace(conversation.workspace).ensure()
    attachments = []
    for name, data in (files or {}).items():
        path = await workspace.write(name, data)
        attachments.append(Attachment(name, path, len(data), media_type(path)))
    return Turn(conversation, text, tuple(attachments), workspace, ThreadDatasets(store, conversation))


def stdout(events: Sequence[AgentEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, CodeOutput) and e.stream == "stdout")


def fixed_conversation(root: Path) -> Conversation:
    now = datetime.now(UTC)
    key = ThreadKey("console", "local", "contract", "t1")
    return Conversation("c1", key, "conv-" + key.digest, "alice", root / "workspaces" / "c1", now, now)


class KernelBackend:
    """The embedded default: what the user sends is the code; prose gets help."""

    answers_in_words = False

    def __init__(self, root: Path, store: LocalDatasetStore) -> None:
        settings = Settings.from_env({"DATATHREAD_HOME": str(root)})
        self.agent = LocalKernelAgent(LocalKernelExecutor(settings, interrupt_grace=3.0))
        self.conversation, self.store = fixed_conversation(root), store

    async def turn(self, text: str, files: dict[str, bytes] | None = None) -> Turn:
        return await attached_turn(self.conversation, self.store, text, files)

    def will_answer(self, text: str) -> str:
        return "hello, what can you do?"  # prose: the answer is the kernel's help

    def will_run_code(self) -> str:
        return "print(6 * 7)"

    def will_fail(self) -> str | None:
        return None  # it fails a turn only when no kernel can start at all

    def will_work_until_cancelled(self) -> str:
        return "import time\nprint('working', flush=True)\nwhile True:\n    time.sleep(0.05)"

    def will_read(self, name: str) -> str:
        return f"print(open({name!r}).read(), end='')"

    def received(self, events: Sequence[AgentEvent], name: str, data: bytes) -> bool:
        return stdout(events) == data.decode()

    async def let_go(self) -> None:
        return None  # the next turn's code runs only once the interrupted one has stopped


class GatewayKernelBackend(KernelBackend):
    """The same agent with its kernels on a Jupyter Enterprise Gateway, configured from the environment."""

    def __init__(self, root: Path, store: LocalDatasetStore, env: dict[str, str]) -> None:
        from bot.agents.gateway.executor import GatewayExecutor

        settings = Settings.from_env({**env, "DATATHREAD_HOME": str(root)})
        assert settings.gateway is not None, "the gateway's environment is set by the backend fixture"
        self.state = SqliteStateStore(root / "state.sqlite3", root / "workspaces")
        self.agent = LocalKernelAgent(GatewayExecutor(settings, settings.gateway, self.state, interrupt_grace=3.0))
        self.conversation, self.store = fixed_conversation(root), store


class BedrockAgentsBackend:
    """Bedrock Agents (``invoke_agent``): the service runs the code; attachments travel as session files."""

    answers_in_words = True

    def __init__(self, service: FakeBedrockAgents, root: Path, store: LocalDatasetStore) -> None:
        self.service = service
        self.agent = BedrockAgent(BedrockAgentConfig("AB12CD34EF", "LIVE123456", throttle_retries=2,
                                                     backoff_seconds=0.05))
        self.conversation, self.store = fixed_conversation(root), store

    async def turn(self, text: str, files: dict[str, bytes] | None = None) -> Turn:
        return await attached_turn(self.conversation, self.store, text, files)

    def will_answer(self, text: str) -> str:
        self.service.queue.append([fx.rationale("a-0", "Answering."), fx.chunk(text)])
        return "a question"

    def will_run_code(self) -> str:
        self.service.queue.append([
            fx.rationale("r-0", "I will compute it."), fx.code("r-0", "print(6 * 7)"),
            fx.code_result("r-0", output="42"), fx.final_response("r-1", "It is 42."), fx.chunk("It is 42."),
        ])
        return "what is 6 times 7?"

    def will_fail(self) -> str | None:
        self.service.queue.append([PreStreamError(403, "AccessDeniedException", "User is not authorized")])
        return "a question"

    def will_work_until_cancelled(self) -> str:
        self.service.queue.append([fx.rationale("c-0", "Starting a long computation."), fx.Hang()])
        return "a long question"

    def will_read(self, name: str) -> str:
        self.service.queue.append([fx.chunk("Read it.")])
        return f"sum the numbers in {name}"

    def received(self, events: Sequence[AgentEvent], name: str, data: bytes) -> bool:
        return (name, "text/csv", data) in self.service.requests[-1].files()

    async def let_go(self) -> None:
        await asyncio.wait_for(self.service.disconnected.wait(), PROMPT_STOP_SECONDS)


class ConverseBackend:
    """Bedrock Converse driving code in an AgentCore Code Interpreter session."""

    answers_in_words = True

    def __init__(self, env: Env, conversation: Conversation) -> None:
        self.env, self.conversation = env, conversation
        self.agent = env.agent()

    async def turn(self, text: str, files: dict[str, bytes] | None = None) -> Turn:
        return await attached_turn(self.conversation, self.env.store, text, files)

    def will_answer(self, text: str) -> str:
        self.env.runtime.script.append(reply(Say(text)))
        return "a question"

    def will_run_code(self) -> str:
        self.env.runtime.script.extend([reply(Call("run_python", {"code": "print(6 * 7)"})), reply(Say("It is 42."))])
        return "what is 6 times 7?"

    def will_fail(self) -> str | None:
        self.env.runtime.script.append(Fail(403, "AccessDeniedException"))
        return "a question"

    def will_work_until_cancelled(self) -> str:
        self.env.runtime.script.append(reply(Think("Working on it."), Hang()))
        return "a long question"

    def will_read(self, name: str) -> str:
        code = f"print(open({name!r}).read(), end='')"
        self.env.runtime.script.extend([reply(Call("run_python", {"code": code})), reply(Say("Read it."))])
        return f"sum the numbers in {name}"

    def received(self, events: Sequence[AgentEvent], name: str, data: bytes) -> bool:
        return stdout(events) == data.decode()

    async def let_go(self) -> None:
        await asyncio.wait_for(self.env.runtime.disconnected.wait(), PROMPT_STOP_SECONDS)


@contextlib.asynccontextmanager
async def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Backend]:
    store = LocalDatasetStore(tmp_path / "datasets")
    backend = KernelBackend(tmp_path, store)
    try:
        yield backend
    finally:
        await backend.agent.aclose()
        await store.aclose()


@contextlib.asynccontextmanager
async def gateway_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Backend]:
    import os

    store = LocalDatasetStore(tmp_path / "datasets")
    backend = GatewayKernelBackend(tmp_path, store, dict(os.environ))
    try:
        yield backend
    finally:
        await backend.agent.release(backend.conversation)  # kernels outlive the bot by design: end this one
        await backend.agent.aclose()
        await backend.state.aclose()
        await store.aclose()


@contextlib.asynccontextmanager
async def bedrock_agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Backend]:
    store = LocalDatasetStore(tmp_path / "datasets")
    async with bedrock_agents_service(monkeypatch, tmp_path) as service:
        backend = BedrockAgentsBackend(service, tmp_path, store)
        try:
            yield backend
        finally:
            await backend.agent.aclose()
            await store.aclose()


@contextlib.asynccontextmanager
async def converse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Backend]:
    async with aws_env(tmp_path, monkeypatch) as env:
        backend = ConverseBackend(env, await env.conversation())
        try:
            yield backend
        finally:
            await backend.agent.aclose()


Factory = Callable[[Path, pytest.MonkeyPatch], contextlib.AbstractAsyncContextManager[Backend]]
BACKENDS: dict[str, Factory] = {"kernel": kernel, "gateway": gateway_kernel, "bedrock-agents": bedrock_agents,
                                 "converse": converse}


@pytest.fixture(params=sorted(BACKENDS))
async def backend(request: pytest.FixtureRequest, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Backend]:
    if request.param == "gateway":  # a deployment points at its gateway through the environment
        running: Gateway = request.getfixturevalue("gateway")
        for name, value in running.env().items():
            monkeypatch.setenv(name, value)
    async with BACKENDS[request.param](tmp_path, monkeypatch) as made:
        yield made


async def run(backend: Backend, turn: Turn) -> list[AgentEvent]:
    return [event async for event in backend.agent.run(turn)]


def ends_the_turn(events: Sequence[AgentEvent], answers_in_words: bool = True) -> bool:
    """The stream ends right after the answer or the failure: nothing follows a ``TurnFailed``, and
    an answer in words ends with ``FinalText`` (it may come in several pieces); a backend that runs
    what it is sent ends after the run's own events, with no words of its own."""
    if any(isinstance(e, TurnFailed) for e in events):
        return isinstance(events[-1], TurnFailed) and sum(isinstance(e, TurnFailed) for e in events) == 1
    if not answers_in_words:
        return bool(events) and not any(isinstance(e, FinalText) for e in events)
    return bool(events) and isinstance(events[-1], FinalText)


async def test_a_turn_ends_with_its_answer(backend: Backend) -> None:
    message = backend.will_answer("The answer is 42.")
    events = await run(backend, await backend.turn(message))
    assert ends_the_turn(events) and not any(isinstance(e, TurnFailed) for e in events)
    assert "".join(e.text for e in events if isinstance(e, FinalText)).strip()


async def test_a_turn_that_runs_code_ends_with_an_answer(backend: Backend) -> None:
    events = await run(backend, await backend.turn(backend.will_run_code()))
    assert not any(isinstance(e, TurnFailed) for e in events)
    assert any(isinstance(e, CodeStarted) for e in events)
    assert ends_the_turn(events, backend.answers_in_words)


async def test_a_failure_ends_the_turn_with_one_turn_failed_and_a_short_message(backend: Backend) -> None:
    message = backend.will_fail()
    if message is None:
        pytest.skip("this backend has no failure a test can arrange without faking our own code")
    events = await run(backend, await backend.turn(message))
    assert ends_the_turn(events) and isinstance(events[-1], TurnFailed)
    failed = events[-1]
    assert failed.message and "Traceback" not in failed.message and len(failed.message) < 400


async def test_cancelling_the_consumer_stops_the_turn_promptly_and_the_next_turn_runs(backend: Backend) -> None:
    working = asyncio.Event()

    async def consume() -> None:
        async for event in backend.agent.run(await backend.turn(backend.will_work_until_cancelled())):
            if isinstance(event, Rationale | CodeOutput):
                working.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(working.wait(), 60)  # the first run may start a kernel
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await backend.let_go()
    assert time.monotonic() - cancelled_at < PROMPT_STOP_SECONDS

    events = await run(backend, await backend.turn(backend.will_read("after.csv"), {"after.csv": CSV}))
    assert not any(isinstance(e, TurnFailed) for e in events)
    assert backend.received(events, "after.csv", CSV)


async def test_an_attachment_reaches_the_code(backend: Backend) -> None:
    events = await run(backend, await backend.turn(backend.will_read("numbers.csv"), {"numbers.csv": CSV}))
    assert not any(isinstance(e, TurnFailed) for e in events)
    assert backend.received(events, "numbers.csv", CSV)
