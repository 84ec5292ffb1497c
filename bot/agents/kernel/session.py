"""One running Jupyter kernel for one conversation: process, channels, startup code, raw messages.

The kernel is the current interpreter (``sys.executable -m ipykernel_launcher``), never a named
kernelspec that may be missing or point at another Python. It runs in the workspace, talks over
Unix sockets in a private temporary folder, gets an environment without our secrets (tokens, AWS
keys) and writes its own stdout / stderr to ``<workspace>/.datathread/kernel.log``.

With a ``SandboxPolicy`` the kernel runs inside bubblewrap (see ``sandbox``): it sees its workspace
at ``sandbox.WORKSPACE``; ``host_path`` maps the paths it reports back to the host workspace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import IO, Any

from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

from bot.agents.kernel.connection import Message
from bot.agents.kernel.sandbox import (
    WORKSPACE,
    DiskQuota,
    KernelCgroup,
    SandboxPolicy,
    SandboxUnavailable,
    kernel_cgroup,
    kernel_process,
    launch_argv,
)
from bot.agents.kernel.startup import MPL_BACKEND
from bot.private import private_file
from bot.workspace import PRIVATE_DIR

log = logging.getLogger(__name__)

__all__ = ["KernelSession", "KernelStartError", "Message", "kernel_env"]

#: Environment variables a kernel inherits; everything else (tokens, cloud keys) stays with us.
_ENV_ALLOW = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "SHELL",
    "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "MPLCONFIGDIR",
})
_STARTUP_TIMEOUT = 60.0


class KernelStartError(RuntimeError):
    """The kernel process could not be started or did not answer."""


KERNEL_ARGV = (sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}")


class _ThisPython(KernelSpecManager):
    """Every kernel name resolves to ipykernel in the interpreter running the bot (``argv`` may wrap it)."""

    def __init__(self, argv: list[str] | None = None) -> None:
        super().__init__()
        self.argv = argv or list(KERNEL_ARGV)

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(
            argv=self.argv,
            display_name="datathread",
            language="python",
            interrupt_mode="signal",
            metadata={"debugger": False},
        )


def kernel_env(sandboxed: bool = False) -> dict[str, str]:
    """The kernel's environment: an allow-list of ours plus what the kernel needs.

    In a sandbox, home and caches are in the sandbox's private ``/tmp`` and nothing of the bot's
    own folders is named."""
    env = {k: v for k, v in os.environ.items() if k in _ENV_ALLOW or k.startswith("LC_")}
    if sandboxed:
        env = {k: v for k, v in env.items() if k not in ("HOME", "USER", "LOGNAME", "TMPDIR", "MPLCONFIGDIR")}
        env |= {"HOME": "/tmp", "USER": "datathread", "MPLCONFIGDIR": "/tmp/matplotlib", "TMPDIR": "/tmp"}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
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
    """A started kernel with its client (a ``KernelConnection``). Use ``start``; always ``shutdown`` (idempotent)."""

    files_elsewhere = False  # the kernel writes straight into the conversation's workspace

    def __init__(self, manager: AsyncKernelManager, client: AsyncKernelClient, runtime: Path, workspace: Path,
                 sandbox: SandboxPolicy | None = None, cgroup: KernelCgroup | None = None) -> None:
        self._manager = manager
        self._client = client
        self._runtime = runtime
        self.workspace = workspace
        self.sandbox = sandbox
        self._cgroup = cgroup
        self._closed = False
        #: Limits what the sandboxed kernel writes into its workspace (``None`` unsandboxed).
        self.quota: DiskQuota | None = None

    @property
    def visible_workspace(self) -> Path | PurePosixPath:
        """The workspace as the kernel sees it (its cwd, the paths it reports)."""
        return WORKSPACE if self.sandbox is not None else self.workspace

    def host_path(self, reported: str) -> str:
        """A path the kernel reported, as a host path (unchanged unless it is under ``visible_workspace``)."""
        if self.sandbox is None:
            return reported
        path = PurePosixPath(reported)
        if path == WORKSPACE or WORKSPACE in path.parents:
            return str(self.workspace / path.relative_to(WORKSPACE))
        return reported

    @classmethod
    async def start(cls, workspace: Path, memory_bytes: int, sandbox: SandboxPolicy | None = None) -> KernelSession:
        """Start a kernel in ``workspace`` (sandboxed with ``sandbox``) and run the startup code.

        Raises ``KernelStartError`` (``SandboxUnavailable`` when bubblewrap is missing)."""
        kernel_log = await asyncio.to_thread(_open_log, workspace)
        # Unix socket paths are limited to ~100 bytes: keep them in a short temporary folder.
        runtime = Path(tempfile.mkdtemp(prefix="dt-k-"))
        cgroup: KernelCgroup | None = None
        argv: list[str] | None = None
        env = kernel_env(sandboxed=sandbox is not None)
        if sandbox is not None:
            cgroup = await asyncio.to_thread(kernel_cgroup, sandbox)
            try:
                argv = launch_argv(sandbox, workspace, runtime, env, KERNEL_ARGV, cgroup)
            except SandboxUnavailable:
                kernel_log.close()
                shutil.rmtree(runtime, ignore_errors=True)
                if cgroup is not None:
                    await asyncio.to_thread(cgroup.remove)
                raise
            env = {}  # bwrap starts with an empty environment; the kernel's is passed with --setenv
        manager = AsyncKernelManager(
            kernel_spec_manager=_ThisPython(argv),
            transport="ipc",
            ip=str(runtime / "k"),
            connection_file=str(runtime / "kernel.json"),
        )
        session: KernelSession | None = None
        try:
            try:
                await manager.start_kernel(cwd=str(workspace), env=env, stdout=kernel_log, stderr=kernel_log)
            finally:
                kernel_log.close()  # the kernel has its own copy of the descriptor
            client = manager.client()
            client.start_channels()
            session = cls(manager, client, runtime, workspace, sandbox, cgroup)
            await client.wait_for_ready(timeout=_STARTUP_TIMEOUT)
            await session._install(memory_bytes)
            if sandbox is not None and session.pid is not None:
                session.quota = DiskQuota(workspace, sandbox.workspace_max_bytes, session.pid)
                await session.quota.refresh()
        except BaseException as exc:  # cancelled too (a Stop during the start): no process may stay behind
            if isinstance(exc, Exception):
                log.warning("kernel start failed in %s", workspace, exc_info=True)
            await asyncio.shield(_discard(session, manager, runtime, cgroup))
            if isinstance(exc, Exception):
                raise KernelStartError(f"{type(exc).__name__}: {exc}") from exc
            raise
        return session

    async def _install(self, memory_bytes: int) -> None:
        code = (
            "__import__('bot.agents.kernel.startup', fromlist=['install'])"
            f".install({str(self.visible_workspace)!r}, {int(memory_bytes)})"
        )
        reply = await self.request(code)
        if reply.get("status") != "ok":
            raise KernelStartError(f"startup code failed: {reply.get('ename')}: {reply.get('evalue')}")

    async def adopt(self, workspace: Path) -> None:
        """Make ``workspace`` the workspace of this warm sandboxed kernel (started on an empty folder).

        The workspace's files move into the folder the kernel has bound at ``/workspace``, and that folder
        then takes the workspace's place (a rename: the bind follows the folder). Same file system only;
        raises ``OSError`` otherwise, leaving the files where they were or in the kernel's folder.
        """
        if self.sandbox is None:
            raise KernelStartError("only a sandboxed kernel sees its workspace at a fixed path")
        await asyncio.to_thread(_adopt, self.workspace, workspace)
        self.workspace = workspace
        if self.quota is not None:
            self.quota.workspace = workspace

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
        if self._closed:
            return
        if self.sandbox is None or self.pid is None:
            await _quiet(self._manager.interrupt_kernel())
            return
        # Not the process group: SIGINT would end bwrap itself, and the kernel with it.
        kernel = await asyncio.to_thread(kernel_process, self.pid)
        if kernel is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(kernel, signal.SIGINT)

    async def is_alive(self) -> bool:
        return not self._closed and bool(await self._manager.is_alive())

    async def shutdown(self) -> None:
        """Stop the kernel process now and free its sockets and files. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        # The Python process inside bwrap outlives the bwrap process jupyter_client waits for by a few
        # milliseconds: it counts against the kernel limit until it is gone, so wait for it too.
        kernel = await asyncio.to_thread(kernel_process, self.pid) if self.pid else None
        self._client.stop_channels()
        await _quiet(self._manager.shutdown_kernel(now=True))
        if kernel is not None:
            await asyncio.to_thread(_wait_gone, kernel)
        if self._cgroup is not None:  # anything that escaped bwrap's process tree
            await asyncio.to_thread(self._cgroup.remove)
        shutil.rmtree(self._runtime, ignore_errors=True)


def _wait_gone(pid: int, within: float = 5.0) -> None:
    """Return once process ``pid`` has exited (a zombie counts as gone), killing it after ``within`` s."""
    deadline = time.monotonic() + within
    killed = False
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in ("Z", "X"):
            return
        if time.monotonic() > deadline:
            if killed:  # unkillable for now (in the kernel's I/O): stop waiting, the log says so
                log.warning("kernel process %d still exists after SIGKILL", pid)
                return
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed, deadline = True, time.monotonic() + within
        time.sleep(0.005)


async def _discard(session: KernelSession | None, manager: AsyncKernelManager, runtime: Path,
                   cgroup: KernelCgroup | None) -> None:
    """Undo a kernel start that did not complete."""
    if session is not None:
        await session.shutdown()
        return
    await _quiet(manager.shutdown_kernel(now=True))
    shutil.rmtree(runtime, ignore_errors=True)
    if cgroup is not None:
        await asyncio.to_thread(cgroup.remove)


def _adopt(folder: Path, workspace: Path) -> None:
    workspace.mkdir(parents=True, exist_ok=True)
    _merge_into(workspace, folder)
    os.rename(folder, workspace)  # onto the now empty workspace folder: atomic


def _merge_into(source: Path, target: Path) -> None:
    """Move everything in ``source`` into ``target`` (``source``'s version wins); ``source`` ends empty."""
    for entry in list(source.iterdir()):
        there = target / entry.name
        if entry.is_dir() and not entry.is_symlink() and there.is_dir() and not there.is_symlink():
            _merge_into(entry, there)
            entry.rmdir()
        else:
            os.replace(entry, there)


def _open_log(workspace: Path) -> IO[bytes]:
    path = private_file(workspace / PRIVATE_DIR / "kernel.log")
    return path.open("ab")


async def _quiet(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception:
        log.debug("kernel housekeeping failed", exc_info=True)
