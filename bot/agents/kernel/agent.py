"""The embedded default agent: a local Jupyter kernel per conversation that runs the code users send.

``LocalKernelExecutor`` is a ``CodeExecutor``: one kernel per conversation, started on first use in
the conversation's workspace, stopped after ``Settings.kernel_idle_timeout`` without use and started
again on the next run (files and datasets stay). Conversations never wait for each other: each
kernel has its own lock, there is no global one. ``LocalKernelAgent`` is the ``AgentBackend`` that
runs what the user sends (see ``code_input`` for what counts as code).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field

from bot.agents.backend import announce_files
from bot.agents.kernel.code_input import code_in
from bot.agents.kernel.run import KernelRun, RunLimits
from bot.agents.kernel.sandbox import SandboxUnavailable, policy_for
from bot.agents.kernel.session import KernelSession, KernelStartError
from bot.config import AgentKind, Settings
from bot.conversation import Conversation, Turn
from bot.events import AgentEvent, CodeError, CodeStarted, DatasetProduced, FinalText, Notice, TurnFailed
from bot.help import local_agent_help
from bot.workspace import Snapshot

log = logging.getLogger(__name__)

START_FAILED = (
    "The local Python kernel could not start. Check that `ipykernel` is installed in this Python "
    "(`pip install ipykernel`); details are in the log."
)

SANDBOX_MISSING = ("Code cannot run here: this server's sandbox for users' code is not available. "
                   "Ask whoever runs the bot to check `datathread doctor`.")


@dataclass
class _Slot:
    """A conversation's kernel. ``lock`` serialises its runs; ``session`` is ``None`` when stopped."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: KernelSession | None = None
    last_used: float = 0.0
    stopped_idle: bool = False


class LocalKernelExecutor:
    """Runs code in per-conversation local kernels, within the run limits of ``settings``.

    ``interrupt_grace``: seconds an interrupted run gets to stop before its kernel is replaced.
    """

    def __init__(self, settings: Settings, *, interrupt_grace: float = 3.0) -> None:
        self.sandbox = policy_for(settings) if settings.kernel_sandbox else None
        self.limits = RunLimits(settings.run_timeout, settings.output_cap_chars, interrupt_grace,
                                settings.workspace_max_bytes if self.sandbox is not None else None)
        self.idle_timeout = settings.kernel_idle_timeout
        self.memory_bytes = settings.kernel_memory_bytes
        self._slots: dict[str, _Slot] = {}
        self._reaper: asyncio.Task[None] | None = None

    async def execute(self, turn: Turn, code: str, *, language: str = "python") -> AsyncGenerator[AgentEvent, None]:
        """Run ``code`` (Python, or a shell command line with ``language="shell"``) for ``turn``.

        Yields output as it arrives, then datasets for displayed tables, then new or changed
        workspace files. Cancelling the consumer interrupts the code; the kernel survives.
        """
        if language not in ("python", "shell"):
            yield CodeError("UnsupportedLanguage", f"the local kernel runs Python or shell, not {language}")
            return
        slot = self._slots.setdefault(turn.conversation.id, _Slot())
        async with slot.lock:
            try:
                session, notice = await self._ensure(slot, turn)
            except SandboxUnavailable:
                yield TurnFailed(SANDBOX_MISSING)
                return
            except KernelStartError:
                yield TurnFailed(START_FAILED, retryable=True)
                return
            if notice is not None:
                yield notice
            before = await turn.workspace.take_snapshot()
            run = KernelRun(session, turn, self.limits)
            source = code if language == "python" else _shell(code)
            quota = session.quota.watching() if session.quota is not None else contextlib.nullcontext()
            try:
                async with quota, aclosing(run.events(source, store_history=language == "python")) as events:
                    async for event in events:
                        yield event
            finally:
                slot.last_used = asyncio.get_running_loop().time()
                if run.kernel_lost:
                    slot.session = None
                    await session.shutdown()
            async with aclosing(self._results(turn, run, before)) as results:
                async for event in results:
                    yield event

    async def _ensure(self, slot: _Slot, turn: Turn) -> tuple[KernelSession, Notice | None]:
        notice: Notice | None = None
        if slot.session is not None and not await slot.session.is_alive():
            await slot.session.shutdown()
            slot.session = None
            notice = Notice("The Python kernel had stopped, so a new one was started: variables from before are "
                            "gone. Files and datasets stay.", "warning")
        if slot.session is None:
            slot.session = await KernelSession.start(turn.workspace.root, self.memory_bytes, self.sandbox)
            self._start_reaper()
            if slot.stopped_idle:
                minutes = self.idle_timeout / 60
                notice = Notice(
                    f"The Python kernel was stopped after {minutes:g} minutes without use and has started again: "
                    "variables from before are gone. Files and datasets stay.",
                    "info",
                )
            slot.stopped_idle = False
        return slot.session, notice

    async def _results(self, turn: Turn, run: KernelRun, before: Snapshot) -> AsyncGenerator[AgentEvent, None]:
        for path, name in run.frames:
            try:
                meta = await turn.datasets.register_file(path, name)
            except Exception as exc:
                log.warning("could not register the displayed table %s", name, exc_info=True)
                yield Notice(f"The table {name} could not be kept as a dataset ({type(exc).__name__}).", "warning")
                continue
            finally:
                # The store keeps its own copy: the kernel's export is only a hand-over.
                path.unlink(missing_ok=True)
            if meta is not None:
                yield DatasetProduced(meta)
        changed = [f for f in await turn.workspace.changes_since(before) if f.path not in run.announced]
        async for event in announce_files(turn, changed):
            yield event

    async def defined(self, conversation: Conversation, names: Iterable[str]) -> set[str]:
        """Which of ``names`` are variables in the conversation's running kernel (none if stopped)."""
        slot = self._slots.get(conversation.id)
        wanted = sorted(n for n in names if n.isidentifier())
        if slot is None or slot.session is None or not wanted:
            return set()
        async with slot.lock:
            session = slot.session
            if session is None or not await session.is_alive():
                return set()
            expr = f"[n for n in {wanted!r} if n in get_ipython().user_ns]"
            try:
                reply = await session.request("", user_expressions={"names": expr}, wait=5.0)
                found = ast.literal_eval(reply["user_expressions"]["names"]["data"]["text/plain"])
            except Exception:
                log.debug("variable lookup failed", exc_info=True)
                return set()
        return {str(n) for n in found}

    def _start_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap(), name="kernel-reaper")

    async def _reap(self) -> None:
        """Stop kernels idle for ``idle_timeout``; ends when no kernel is left running."""
        interval = min(30.0, max(0.1, self.idle_timeout / 4))
        loop = asyncio.get_running_loop()
        while any(s.session is not None for s in self._slots.values()):
            await asyncio.sleep(interval)
            for slot in list(self._slots.values()):
                session = slot.session
                if session is None or slot.lock.locked() or loop.time() - slot.last_used < self.idle_timeout:
                    continue
                slot.session = None  # before awaiting: a run starting now gets a fresh kernel
                slot.stopped_idle = True
                log.info("stopping an idle kernel")
                await session.shutdown()

    async def release(self, conversation: Conversation) -> None:
        """Shut the conversation's kernel down (a running cell ends); its workspace stays."""
        slot = self._slots.pop(conversation.id, None)
        if slot is not None and slot.session is not None:
            session, slot.session = slot.session, None
            await session.shutdown()

    async def aclose(self) -> None:
        """Shut every kernel down; no kernel process is left behind."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        sessions = [s.session for s in self._slots.values() if s.session is not None]
        self._slots.clear()
        await asyncio.gather(*(s.shutdown() for s in sessions))


def _shell(command: str) -> str:
    return f"__import__('bot.agents.kernel.startup', fromlist=['run_shell']).run_shell({command!r})"


class LocalKernelAgent:
    """``AgentBackend`` for the embedded default: runs the code the user sends, or answers with help."""

    name: str = AgentKind.KERNEL

    def __init__(self, executor: LocalKernelExecutor) -> None:
        self.executor = executor

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalKernelAgent:
        return cls(LocalKernelExecutor(settings))

    async def run(self, turn: Turn) -> AsyncGenerator[AgentEvent, None]:
        request = code_in(turn.text)
        if request is not None and request.needs_names:
            defined = await self.executor.defined(turn.conversation, request.needs_names)
            if not request.needs_names <= defined:
                request = None
        if request is None:
            yield FinalText(_attachments_note(turn) or local_agent_help())
            return
        yield CodeStarted(request.code, request.language)
        async with aclosing(self.executor.execute(turn, request.code, language=request.language)) as events:
            async for event in events:
                yield event

    async def release(self, conversation: Conversation) -> None:
        await self.executor.release(conversation)

    async def aclose(self) -> None:
        await self.executor.aclose()


def _attachments_note(turn: Turn) -> str | None:
    """For a message that only brings files: where they are and how to read them."""
    if not turn.attachments or turn.text.strip():
        return None
    names = ", ".join(f"`{turn.workspace.relative(a.path)}`" for a in turn.attachments)
    first = turn.workspace.relative(turn.attachments[0].path)
    return (f"Saved {names} in this conversation's folder. Read it with code, e.g. "
            f"```python\nimport pandas as pd\ndf = pd.read_csv({first!r})\ndf\n```")
