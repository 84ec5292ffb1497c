"""One running Jupyter kernel for one conversation: process, channels, startup code, raw messages.

The kernel is the current interpreter (``sys.executable -m ipykernel_launcher``), never a named
kernelspec that may be missing or point at another Python. It runs in the workspace, talks over
Unix sockets in a private temporary folder, gets an environment without our secrets (tokens, AWS
keys) and writes its own stdout / stderr to ``<workspace>/.datathread/kernel.log``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import shutil
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

from bot.agents.kernel.startup import MPL_BACKEND
from bot.private import private_file
from bot.workspace import PRIVATE_DIR

log = logging.getLogger(__name__)

Message = dict[str, Any]

#: Environment variables a kernel inherits; everything else (tokens, cloud keys) stays with us.
_ENV_ALLOW = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "SHELL",
    "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "MPLCONFIGDIR",
})
_STARTUP_TIMEOUT = 60.0


class KernelStartError(RuntimeError):
    """The kernel process could not be started or did not answer."""


class _ThisPython(KernelSpecManager):
    """Every kernel name resolves to ipykernel in the interpreter running the bot."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name="datathread",
            language="python",
            interrupt_mode="signal",
            metadata={"debugger": False},
        )


def kernel_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _ENV_ALLOW or k.startswith("LC_")}
    env["MPLBACKEND"] = MPL_BACKEND  # before ipykernel picks the inline backend
    # The startup code imports this package: make it importable from the workspace even when the
    # bot runs from a source checkout rather than an installed distribution.
    source_root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), source_root) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_COLOR"] = "1"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    return env


class KernelSession:
    """A started kernel with its client. Use ``start``; always ``shutdown`` (idempotent)."""

    def __init__(self, manager: AsyncKernelManager, client: AsyncKernelClient, runtime: Path) -> None:
        self._manager = manager
        self._client = client
        self._runtime = runtime
        self._closed = False

    @classmethod
    async def start(cls, workspace: Path, memory_bytes: int) -> KernelSession:
        """Start a kernel in ``workspace`` and run the startup code; raises ``KernelStartError``."""
        kernel_log = await asyncio.to_thread(_open_log, workspace)
        # Unix socket paths are limited to ~100 bytes: keep them in a short temporary folder.
        runtime = Path(tempfile.mkdtemp(prefix="dt-k-"))
        manager = AsyncKernelManager(
            kernel_spec_manager=_ThisPython(),
            transport="ipc",
            ip=str(runtime / "k"),
            connection_file=str(runtime / "kernel.json"),
        )
        session: KernelSession | None = None
        try:
            try:
                await manager.start_kernel(cwd=str(workspace), env=kernel_env(), stdout=kernel_log,
                                           stderr=kernel_log)
            finally:
                kernel_log.close()  # the kernel has its own copy of the descriptor
            client = manager.client()
            client.start_channels()
            session = cls(manager, client, runtime)
            await client.wait_for_ready(timeout=_STARTUP_TIMEOUT)
            await session._install(workspace, memory_bytes)
        except Exception as exc:
            log.warning("kernel start failed in %s", workspace, exc_info=True)
            if session is not None:
                await session.shutdown()
            else:
                await _quiet(manager.shutdown_kernel(now=True))
                shutil.rmtree(runtime, ignore_errors=True)
            raise KernelStartError(f"{type(exc).__name__}: {exc}") from exc
        return session

    async def _install(self, workspace: Path, memory_bytes: int) -> None:
        code = (
            "__import__('bot.agents.kernel.startup', fromlist=['install'])"
            f".install({str(workspace)!r}, {int(memory_bytes)})"
        )
        reply = await self.request(code)
        if reply.get("status") != "ok":
            raise KernelStartError(f"startup code failed: {reply.get('ename')}: {reply.get('evalue')}")

    @property
    def pid(self) -> int | None:
        provisioner = self._manager.provisioner
        return getattr(provisioner, "pid", None)

    def execute(self, code: str, *, store_history: bool = True) -> str:
        """Send ``code`` to run; returns the request id its iopub messages carry as parent."""
        # stop_on_error=False: an interrupted (cancelled) run must not abort the run queued after it.
        return str(self._client.execute(code, store_history=store_history, allow_stdin=False, stop_on_error=False))

    async def message(self, wait: float) -> Message | None:
        """The next iopub message (any request), or ``None`` after ``wait`` seconds."""
        try:
            msg: Message = await self._client.get_iopub_msg(timeout=wait)
        except queue.Empty:
            return None
        return msg

    async def reply(self, msg_id: str, wait: float = 5.0) -> Message | None:
        """The shell reply content to ``msg_id``; replies to earlier (abandoned) requests are dropped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while (left := deadline - loop.time()) > 0:
            try:
                msg: Message = await self._client.get_shell_msg(timeout=left)
            except queue.Empty:
                return None
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                content: Message = msg["content"]
                return content
        return None

    async def request(self, code: str, user_expressions: dict[str, str] | None = None,
                      wait: float = _STARTUP_TIMEOUT) -> Message:
        """Run ``code`` silently (no output, no history) and return the reply content."""
        msg_id = self._client.execute(code, silent=True, store_history=False,
                                      user_expressions=user_expressions or {}, allow_stdin=False,
                                      stop_on_error=False)
        reply = await self.reply(msg_id, wait=wait)
        if reply is None:
            raise TimeoutError("the kernel did not answer")
        return reply

    async def interrupt(self) -> None:
        if not self._closed:
            await _quiet(self._manager.interrupt_kernel())

    async def is_alive(self) -> bool:
        return not self._closed and bool(await self._manager.is_alive())

    async def shutdown(self) -> None:
        """Stop the kernel process now and free its sockets and files. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._client.stop_channels()
        await _quiet(self._manager.shutdown_kernel(now=True))
        shutil.rmtree(self._runtime, ignore_errors=True)


def _open_log(workspace: Path) -> IO[bytes]:
    path = private_file(workspace / PRIVATE_DIR / "kernel.log")
    return path.open("ab")


async def _quiet(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception:
        log.debug("kernel housekeeping failed", exc_info=True)
