"""The embedded default agent: a local Jupyter kernel per conversation that runs the code users send.

``LocalKernelExecutor`` is a ``CodeExecutor``: one kernel per conversation, started on first use in
the conversation's workspace, stopped after ``Settings.kernel_idle_timeout`` without use and started
again on the next run (files and datasets stay). Conversations never wait for each other: each
kernel has its own lock, there is no global one. ``LocalKernelAgent`` is the ``AgentBackend`` that
runs what the user sends (see ``code_input`` for what counts as code).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator, Awaitable, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Protocol

from bot.agents.backend import CodeExecutor
from bot.agents.kernel.code_input import code_in
from bot.agents.kernel.connection import defined_names
from bot.agents.kernel.handover import sweep_stale_handovers
from bot.agents.kernel.pool import KernelPool
from bot.agents.kernel.results import run_results
from bot.agents.kernel.run import KernelRun, RunLimits, shell_cell
from bot.agents.kernel.sandbox import SandboxUnavailable, policy_for
from bot.agents.kernel.session import KernelSession, KernelStartError
from bot.config import AgentKind, Settings
from bot.conversation import Conversation, Turn
from bot.durations import human_duration
from bot.events import AgentEvent, CodeError, CodeStarted, FinalText, Notice, TurnFailed
from bot.help import local_agent_help

log = logging.getLogger(__name__)

#: How often a running kernel reaper also sweeps stale hand-over files.
HANDOVER_SWEEP_SECONDS = 600.0

START_FAILED = (
    "The local Python kernel could not start. Check that `ipykernel` is installed in this Python "
    "(`pip install ipykernel`); details are in the log."
)

SANDBOX_MISSING = ("Code cannot run here: this server's sandbox for users' code is not available. "
                   "Ask whoever runs the bot to check `datathread doctor`.")


@dataclass
class _Slot:
    """A conversation's kernel. ``lock`` serialises its runs; ``session`` is ``None`` when stopped.

    ``stopped``: why the last kernel was stopped by us ("idle" or "room"), told when the next one starts."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: KernelSession | None = None
    last_used: float = 0.0
    stopped: str | None = None


def waiting_notice(ahead: int) -> Notice:
    """What a turn shows while every kernel is busy."""
    return Notice(f"Waiting for a free kernel ({ahead} ahead)…" if ahead else "Waiting for a free kernel…", "info")


class LocalKernelExecutor:
    """Runs code in per-conversation local kernels, within the run limits of ``settings``.

    At most ``settings.max_kernels`` kernels run at once (``KernelPool``): a turn that needs a kernel when
    all are taken stops the least recently used idle one, or waits its turn (told with a notice). With
    the sandbox on, ``settings.warm_kernels`` kernels are started ahead of need (``warm_up``) and adopt
    the workspace of the conversation that first needs one.

    ``interrupt_grace``: seconds an interrupted run gets to stop before its kernel is replaced.
    """

    #: Variables live in this process's kernels (``bot.conversation_moves``).
    variables_here = True

    def __init__(self, settings: Settings, *, interrupt_grace: float = 3.0) -> None:
        self.sandbox = policy_for(settings) if settings.kernel_sandbox else None
        self.limits = RunLimits(settings.run_timeout, settings.output_cap_chars, interrupt_grace,
                                settings.workspace_max_bytes if self.sandbox is not None else None)
        self.idle_timeout = settings.kernel_idle_timeout
        self.memory_bytes = settings.kernel_memory_bytes
        self.workspaces = settings.workspaces
        self.pool = KernelPool(settings.max_kernels)
        # Warm kernels need the fixed /workspace path of the sandbox to change workspace after start.
        self.warm_target = settings.warm_kernels if self.sandbox is not None else 0
        self._warm_root = settings.home / "kernels"
        self._warm: list[KernelSession] = []
        self._slots: dict[str, _Slot] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._refill: asyncio.Task[None] | None = None
        self._chores: set[asyncio.Task[None]] = set()

    async def execute(self, turn: Turn, code: str, *, language: str = "python") -> AsyncGenerator[AgentEvent, None]:
        """Run ``code`` (Python, or a shell command line with ``language="shell"``) for ``turn``.

        Yields output as it arrives, then datasets for displayed tables, then new or changed
        workspace files. Cancelling the consumer interrupts the code; the kernel survives.
        """
        if language not in ("python", "shell"):
            yield CodeError("UnsupportedLanguage", f"the local kernel runs Python or shell, not {language}")
            return
        slot = self._slots.setdefault(turn.conversation.id, _Slot())
        try:
            async with slot.lock:
                notice: Notice | None = None
                if slot.session is not None and not await slot.session.is_alive():
                    dead, slot.session = slot.session, None
                    await self._stop(dead)
                    notice = Notice("The Python kernel had stopped, so a new one was started: variables from "
                                    "before are gone. Files and datasets stay.", "warning")
                if slot.session is None:
                    session = await self._warm_for(turn)
                    if session is None and not await self._make_room(slot):
                        yield waiting_notice(self.pool.waiting)
                        await self.pool.acquire()
                    if session is None:
                        try:
                            session = await KernelSession.start(turn.workspace.root, self.memory_bytes, self.sandbox)
                        except SandboxUnavailable:
                            self.pool.release()
                            yield TurnFailed(SANDBOX_MISSING)
                            return
                        except KernelStartError:
                            self.pool.release()
                            yield TurnFailed(START_FAILED, retryable=True)
                            return
                        except BaseException:  # stopped during the start: the session cleaned itself up
                            self.pool.release()
                            raise
                    slot.session = session
                    self._start_reaper()
                    notice = self._restart_notice(slot) or notice
                    slot.stopped = None
                session = slot.session
                if notice is not None:
                    yield notice
                before = await turn.workspace.take_snapshot()
                run = KernelRun(session, turn, self.limits)
                source = code if language == "python" else shell_cell(code)
                quota = session.quota.watching() if session.quota is not None else contextlib.nullcontext()
                try:
                    async with quota, aclosing(run.events(source, store_history=language == "python")) as events:
                        async for event in events:
                            yield event
                finally:
                    slot.last_used = asyncio.get_running_loop().time()
                    if run.kernel_lost:
                        slot.session = None
                        await self._stop(session)
                async with aclosing(run_results(turn, run, before)) as results:
                    async for event in results:
                        yield event
        finally:
            if self.pool.waiting:  # this kernel is idle now: a waiting turn may take its place
                self._chore(self._make_room(None))

    def _restart_notice(self, slot: _Slot) -> Notice | None:
        if slot.stopped == "idle":
            return Notice(f"The Python kernel was stopped after {human_duration(self.idle_timeout)} without use and "
                          "has started again: variables from before are gone. Files and datasets stay.", "info")
        if slot.stopped == "room":
            return Notice("The Python kernel was stopped to make room for other conversations and has started "
                          "again: variables from before are gone. Files and datasets stay.", "info")
        return None

    async def _stop(self, session: KernelSession) -> None:
        """Shut a kernel down and give its place back (to the first waiting turn, if any)."""
        try:
            await session.shutdown()
        finally:
            self.pool.release()
            self._fill_warm()

    async def _make_room(self, asking: _Slot | None) -> bool:
        """Take a place for ``asking`` (stopping a warm or the least recently used idle kernel if all are
        taken); ``False`` when every kernel is busy. With ``asking=None``, free a place for waiting turns."""
        if asking is not None and self.pool.try_acquire():
            return True
        victim: KernelSession | None = None
        if self._warm:
            victim = self._warm.pop(0)
        else:
            idle = [s for s in self._slots.values()
                    if s.session is not None and s is not asking and not s.lock.locked()]
            if idle:
                lru = min(idle, key=lambda s: s.last_used)
                victim, lru.session, lru.stopped = lru.session, None, "room"
                log.info("stopping the least recently used idle kernel to make room")
        if victim is None:
            return False
        await self._stop(victim)  # the place goes to the first waiter, else back to the pool
        return asking is not None and self.pool.try_acquire()

    async def _warm_for(self, turn: Turn) -> KernelSession | None:
        """A warm kernel that now works in ``turn``'s workspace, or ``None`` (none ready, or it failed)."""
        while self._warm:
            session = self._warm.pop(0)
            try:
                if await session.is_alive():
                    await session.adopt(turn.workspace.root)
                    self._fill_warm()
                    return session
            except (OSError, KernelStartError):
                log.warning("a warm kernel could not take the workspace", exc_info=True)
            except BaseException:
                await asyncio.shield(self._stop(session))
                raise
            await self._stop(session)
        self._fill_warm()
        return None

    async def warm_up(self) -> None:
        """Start the warm kernels now (``serve`` calls it at start); returns when they are ready."""
        self._fill_warm()
        if self._refill is not None:
            await asyncio.shield(self._refill)

    def _fill_warm(self) -> None:
        if len(self._warm) < self.warm_target and (self._refill is None or self._refill.done()):
            self._refill = asyncio.create_task(self._fill(), name="warm-kernels")

    async def _fill(self) -> None:
        assert self.sandbox is not None
        while len(self._warm) < self.warm_target and self.pool.try_acquire():
            folder = self._warm_root / uuid.uuid4().hex[:12]
            try:
                session = await KernelSession.start(folder, self.memory_bytes, self.sandbox)
            except (KernelStartError, SandboxUnavailable):
                self.pool.release()
                log.warning("could not start a warm kernel", exc_info=True)
                return
            if self.pool.waiting:  # a turn queued meanwhile: it needs the place more than a spare does
                await self._stop(session)
                return
            self._warm.append(session)

    def _chore(self, work: Awaitable[object]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.warning("kernel housekeeping failed", exc_info=True)

        task = asyncio.create_task(run(), name="kernel-chore")
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def defined(self, conversation: Conversation, names: Iterable[str]) -> set[str]:
        """Which of ``names`` are variables in the conversation's running kernel (none if stopped)."""
        slot = self._slots.get(conversation.id)
        if slot is None or slot.session is None:
            return set()
        async with slot.lock:
            session = slot.session
            if session is None or not await session.is_alive():
                return set()
            return await defined_names(session, names)

    def _start_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap(), name="kernel-reaper")

    async def _reap(self) -> None:
        """Stop kernels idle for ``idle_timeout``, and sweep stale hand-over files (at the start and
        every ``HANDOVER_SWEEP_SECONDS``); ends when no kernel is left running."""
        interval = min(30.0, max(0.1, self.idle_timeout / 4))
        loop = asyncio.get_running_loop()
        swept = -HANDOVER_SWEEP_SECONDS
        while any(s.session is not None for s in self._slots.values()):
            if loop.time() - swept >= HANDOVER_SWEEP_SECONDS:
                swept = loop.time()
                try:
                    await asyncio.to_thread(sweep_stale_handovers, self.workspaces)
                except OSError:
                    log.warning("sweeping kernel hand-over files failed", exc_info=True)
            await asyncio.sleep(interval)
            for slot in list(self._slots.values()):
                session = slot.session
                if session is None or slot.lock.locked() or loop.time() - slot.last_used < self.idle_timeout:
                    continue
                slot.session = None  # before awaiting: a run starting now gets a fresh kernel
                slot.stopped = "idle"
                log.info("stopping an idle kernel")
                await self._stop(session)

    async def release(self, conversation: Conversation) -> None:
        """Shut the conversation's kernel down (a running cell ends); its workspace stays."""
        slot = self._slots.pop(conversation.id, None)
        if slot is not None and slot.session is not None:
            session, slot.session = slot.session, None
            await self._stop(session)

    async def aclose(self) -> None:
        """Shut every kernel down; no kernel process is left behind."""
        self.warm_target = 0
        for task in (self._reaper, self._refill, *self._chores):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._reaper = self._refill = None
        sessions = [s.session for s in self._slots.values() if s.session is not None] + self._warm
        self._slots.clear()
        self._warm.clear()
        await asyncio.gather(*(s.shutdown() for s in sessions))


class KernelExecutor(CodeExecutor, Protocol):
    """A ``CodeExecutor`` on a Jupyter kernel, which can also say which variables it holds."""

    def execute(self, turn: Turn, code: str, *, language: str = "python") -> AsyncGenerator[AgentEvent, None]: ...

    async def defined(self, conversation: Conversation, names: Iterable[str]) -> set[str]:
        """Which of ``names`` are variables in the conversation's running kernel (none if stopped)."""
        ...


class LocalKernelAgent:
    """``AgentBackend`` for the embedded default: runs the code the user sends, or answers with help.

    Its kernels are local (``LocalKernelExecutor``) or on a Jupyter Enterprise Gateway
    (``bot.agents.gateway.executor.GatewayExecutor``)."""

    name: str = AgentKind.KERNEL
    #: Variables live in this process's kernels (``bot.conversation_moves``).
    variables_here = True

    def __init__(self, executor: KernelExecutor) -> None:
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
