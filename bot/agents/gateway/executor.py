"""``CodeExecutor`` on a Jupyter Enterprise Gateway: each conversation's kernel runs on the gateway.

The run itself is the local kernel's (``bot.agents.kernel.run.KernelRun``: output streaming and its
cap, time limit with interrupt, cancel, errors, tables and figures) over a ``GatewaySession``; what
differs is the kernel's transport and where files live.

* The kernel id is kept in the ``StateStore`` (namespace ``gateway-kernel``), so after a restart, or
  on another replica, the conversation reattaches to its kernel and keeps its variables. A kernel the
  gateway no longer has (culled when idle, ended) is replaced, and that turn is told once that
  variables were reset. ``aclose`` leaves kernels running for that reason; the gateway's own idle
  culling ends them. ``release`` deletes one. After ``Settings.kernel_idle_timeout`` without a run
  we close our WebSocket to a kernel (the next run reattaches): the gateway does not cull a kernel
  with a client connected, and each connection holds a thread here.
* The kernel has its own disk: it works in ``datathread/<conversation>`` under its cwd. Before a run,
  workspace files it lacks are written there; after the run, files the code created or changed
  come back into the workspace, so files, figures and datasets appear as with a local kernel. Bytes
  move through the kernel itself (base64 through execute requests, ``CHUNK_BYTES`` at a time), up to
  ``GatewaySettings.transfer_max_bytes`` per file; larger files stay where they are, with a notice.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import re
from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

from bot.agents.gateway.kernel_side import FRAMES
from bot.agents.gateway.mirror import FileMirror
from bot.agents.gateway.session import GatewayError, GatewaySession, configure
from bot.agents.gateway.shipping import call
from bot.agents.kernel.connection import defined_names
from bot.agents.kernel.results import run_results
from bot.agents.kernel.run import KernelRun, RunLimits, shell_cell
from bot.conversation import Conversation, Turn
from bot.events import AgentEvent, CodeError, Notice, TurnFailed
from bot.private import private_dir
from bot.workspace import UnsafePath, Workspace, human_size

if TYPE_CHECKING:
    from bot.config import GatewaySettings, Settings
    from bot.storage.base import StateStore

log = logging.getLogger(__name__)

KERNEL_NAMESPACE = "gateway-kernel"
#: Bytes per execute request when copying a file (base64 makes the message a third larger).
CHUNK_BYTES = 1024 * 1024

RESET = ("The Python kernel on the gateway had ended (stopped when idle, or restarted), so a new one was started: "
         "variables from before are gone. Files and datasets stay.")


def unreachable(reason: str) -> TurnFailed:
    """What a turn says when no kernel can be had from the gateway."""
    return TurnFailed(f"Code cannot run right now: {reason}. Try again in a moment; if it persists, ask whoever "
                      "runs the bot to check `datathread doctor`.", retryable=True)


@dataclass
class _Slot:
    """A conversation's kernel. ``lock`` serialises its runs; ``session`` is ``None`` until attached."""

    mirror: FileMirror
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: GatewaySession | None = None
    last_used: float = 0.0
    kernel_id: str | None = None  # the kernel ``mirror`` describes


class GatewayExecutor:
    """Runs code in per-conversation kernels on a Jupyter Enterprise Gateway (see the module doc).

    ``interrupt_grace``: seconds an interrupted run gets to stop before its kernel is replaced.
    """

    def __init__(self, settings: Settings, gateway: GatewaySettings, state: StateStore, *,
                 interrupt_grace: float = 3.0) -> None:
        configure(gateway)
        self.gateway = gateway
        self.state = state
        self.limits = RunLimits(settings.run_timeout, settings.output_cap_chars, interrupt_grace)
        self.memory_bytes = settings.kernel_memory_bytes
        self.idle_timeout = settings.kernel_idle_timeout
        self._slots: dict[str, _Slot] = {}
        self._reaper: asyncio.Task[None] | None = None

    async def execute(self, turn: Turn, code: str, *, language: str = "python") -> AsyncGenerator[AgentEvent, None]:
        """Run ``code`` (Python, or a shell command line with ``language="shell"``) on the conversation's
        gateway kernel: output as it arrives, then figures, datasets and new or changed files.
        Cancelling the consumer interrupts the code; the kernel and its variables stay."""
        if language not in ("python", "shell"):
            yield CodeError("UnsupportedLanguage", f"the gateway kernel runs Python or shell, not {language}")
            return
        slot = self._slots.setdefault(turn.conversation.id, _Slot(FileMirror(self.gateway.transfer_max_bytes)))
        async with slot.lock:
            try:
                notice = await self._ensure(slot, turn)
            except GatewayError as exc:
                yield unreachable(exc.reason)
                return
            except (RuntimeError, TimeoutError):
                log.warning("the gateway kernel did not get ready", exc_info=True)
                yield unreachable("the kernel on the gateway did not answer")
                return
            session = slot.session
            assert session is not None
            self._start_reaper()
            if notice is not None:
                yield notice
            try:
                async with aclosing(self._push(slot, session, turn)) as pushed:
                    async for event in pushed:
                        yield event
            except (RuntimeError, TimeoutError):
                log.warning("copying files to the gateway kernel failed", exc_info=True)
                yield Notice("Some files could not be copied to the kernel on the gateway.", "warning")
            before = await turn.workspace.take_snapshot()
            run = KernelRun(session, turn, self.limits)
            try:
                async with aclosing(run.events(code if language == "python" else shell_cell(code),
                                               store_history=language == "python")) as events:
                    async for event in events:
                        yield event
            finally:
                slot.last_used = asyncio.get_running_loop().time()
                if run.kernel_lost:
                    slot.session = None
                    await asyncio.shield(self._forget(turn.conversation, session))
            if slot.session is not None:
                try:
                    async with aclosing(self._pull(slot, session, turn)) as pulled:
                        async for event in pulled:
                            yield event
                except (RuntimeError, TimeoutError):
                    log.warning("copying files back from the gateway kernel failed", exc_info=True)
                    yield Notice("Some files the code wrote could not be copied back from the kernel on the gateway.",
                                 "warning")
            async with aclosing(run_results(turn, run, before)) as results:
                async for event in results:
                    yield event

    async def _ensure(self, slot: _Slot, turn: Turn) -> Notice | None:
        """Give ``slot`` a live kernel: the one it has, the stored one, or a new one (with the reset notice
        when an earlier kernel is gone)."""
        conversation = turn.conversation
        if slot.session is not None:
            if await slot.session.is_alive():
                return None
            dead, slot.session = slot.session, None
            await self._forget(conversation, dead)
            lost = True
        else:
            found = await self._reattach(slot, conversation)
            if found == "attached":
                return None
            lost = found == "gone"
        session = await GatewaySession.start(self.gateway, turn.workspace.root, _folder(conversation),
                                             self.memory_bytes)
        slot.session, slot.kernel_id = session, session.kernel_id
        slot.mirror = FileMirror(self.gateway.transfer_max_bytes)
        await self.state.put_value(KERNEL_NAMESPACE, conversation.id, {"kernel_id": session.kernel_id})
        return Notice(RESET, "info") if lost else None

    async def _reattach(self, slot: _Slot, conversation: Conversation) -> Literal["attached", "gone", "none"]:
        """Attach ``slot`` to the conversation's stored kernel: ``"attached"``; ``"gone"`` if the gateway no
        longer has it or it restarted (its variables and our startup code are lost: it is deleted); ``"none"``
        if no kernel is stored. The stored id is left for ``_ensure`` to replace."""
        stored = await self.state.get_value(KERNEL_NAMESPACE, conversation.id)
        kernel_id = stored.get("kernel_id") if isinstance(stored, dict) else None
        if not kernel_id:
            return "none"
        session = await GatewaySession.attach(str(kernel_id), Workspace(conversation.workspace).root)
        if session is None:
            return "gone"
        try:
            if not await session.find_root():
                await session.shutdown()
                return "gone"
            listing = dict(await session.value(call("manifest")))
        except BaseException:
            await asyncio.shield(session.detach())
            raise
        if slot.kernel_id != session.kernel_id:  # new to this process (a restart, another replica)
            slot.mirror = FileMirror(self.gateway.transfer_max_bytes)
            slot.kernel_id = session.kernel_id
        slot.mirror.kernel = listing
        slot.session = session
        return "attached"

    async def _forget(self, conversation: Conversation, session: GatewaySession) -> None:
        await session.shutdown()
        stored = await self.state.get_value(KERNEL_NAMESPACE, conversation.id)
        if isinstance(stored, dict) and stored.get("kernel_id") == session.kernel_id:
            await self.state.put_value(KERNEL_NAMESPACE, conversation.id, None)

    async def _push(self, slot: _Slot, session: GatewaySession, turn: Turn) -> AsyncGenerator[AgentEvent, None]:
        pushed = False
        for f in slot.mirror.to_push(await turn.workspace.list_files()):
            fits = slot.mirror.fits(f.name, f.size)
            if not fits:
                if fits is False:
                    yield Notice(f"{f.name} ({human_size(f.size)}) was not copied to the kernel on the gateway: files "
                                 f"over {human_size(self.gateway.transfer_max_bytes)} are not.", "warning")
                continue
            offset = 0
            with f.path.open("rb") as source:
                while True:
                    chunk = await asyncio.to_thread(source.read, CHUNK_BYTES)
                    if not chunk and offset:
                        break
                    # A user expression, not cell code: IPython's cell transforms take ~0.45 s per MiB of source.
                    await session.value(call("write_chunk", f.name, offset, base64.b64encode(chunk).decode("ascii")))
                    offset += len(chunk)
                    if not chunk:
                        break
            slot.mirror.host[f.name] = (f.size, f.mtime_ns)
            pushed = True
        if pushed:  # what the kernel holds now, so the pushed files are not taken for the run's own
            slot.mirror.kernel = dict(await session.value(call("manifest")))

    async def _pull(self, slot: _Slot, session: GatewaySession, turn: Turn) -> AsyncGenerator[AgentEvent, None]:
        listing = dict(await session.value(call("manifest")))
        frames: list[str] = []
        for name, size in slot.mirror.to_pull(listing):
            if name.startswith(FRAMES + "/"):
                frames.append(name)
            fits = slot.mirror.fits(name, size)
            if not fits:
                if fits is False:
                    yield Notice(f"{name} ({human_size(size)}) stayed on the kernel's disk on the gateway: files over "
                                 f"{human_size(self.gateway.transfer_max_bytes)} are not copied back.", "warning")
                continue
            try:
                target = turn.workspace.resolve(name)
            except UnsafePath:
                continue
            await self._fetch(session, name, size, target)
            st = target.stat()
            slot.mirror.host[name] = (st.st_size, st.st_mtime_ns)
        if frames:  # the host has them now; the store keeps its own copy after registering
            await session.run_silently(call("remove", frames))
            for name in frames:
                slot.mirror.kernel.pop(name, None)

    async def _fetch(self, session: GatewaySession, name: str, size: int, target: Path) -> None:
        private_dir(target.parent)
        partial = target.with_name(f".{target.name}.part")
        try:
            with partial.open("wb") as sink:
                os.chmod(partial, 0o600)
                offset = 0
                while offset < size or offset == 0:
                    data = base64.b64decode(await session.value(call("read_chunk", name, offset, CHUNK_BYTES)))
                    if not data:
                        break
                    await asyncio.to_thread(sink.write, data)
                    offset += len(data)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)

    async def defined(self, conversation: Conversation, names: Iterable[str]) -> set[str]:
        """Which of ``names`` are variables in the conversation's kernel (reattached if it has one on the
        gateway; none if it has not)."""
        names = [n for n in names if n.isidentifier()]
        if not names:
            return set()
        slot = self._slots.setdefault(conversation.id, _Slot(FileMirror(self.gateway.transfer_max_bytes)))
        async with slot.lock:
            try:
                if slot.session is None and await self._reattach(slot, conversation) == "attached":
                    self._start_reaper()
            except Exception:
                log.debug("could not reattach to look up variables", exc_info=True)
                return set()
            if slot.session is None:
                return set()
            return await defined_names(slot.session, names)

    def _start_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap(), name="gateway-reaper")

    async def _reap(self) -> None:
        """Close connections idle for ``idle_timeout`` (their kernels keep running); ends when none is left."""
        interval = min(30.0, max(0.1, self.idle_timeout / 4))
        loop = asyncio.get_running_loop()
        while any(s.session is not None for s in self._slots.values()):
            await asyncio.sleep(interval)
            for slot in list(self._slots.values()):
                session = slot.session
                if session is None or slot.lock.locked() or loop.time() - slot.last_used < self.idle_timeout:
                    continue
                slot.session = None  # before awaiting: a run starting now reattaches
                await session.detach()

    async def release(self, conversation: Conversation) -> None:
        """Delete the conversation's kernel on the gateway (a running cell ends); its workspace stays."""
        slot = self._slots.pop(conversation.id, None)
        if slot is not None and slot.session is not None:
            session, slot.session = slot.session, None
            await self._forget(conversation, session)

    async def aclose(self) -> None:
        """Close our connections; the kernels keep running on the gateway for the next start to reattach."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        sessions = [s.session for s in self._slots.values() if s.session is not None]
        self._slots.clear()
        for session in sessions:
            with contextlib.suppress(Exception):
                await session.detach()


def _folder(conversation: Conversation) -> str:
    """The conversation's folder on the kernel's disk, relative to the kernel's cwd."""
    return str(PurePosixPath("datathread") / re.sub(r"[^A-Za-z0-9._-]", "_", conversation.id))
