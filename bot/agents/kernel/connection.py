"""The seam between one run's logic (``run.KernelRun``) and a kernel's transport.

A kernel may be a local process (``session.KernelSession``: ZeroMQ over Unix sockets) or a kernel on
a Jupyter Enterprise Gateway (``bot.agents.gateway.session.GatewaySession``: REST and a WebSocket).
The run logic — output streaming and its cap, time limits with interrupt, cancel, errors, tables
and figures — is written once against this ``Protocol``; the contract suites run it against both.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bot.agents.kernel.sandbox import DiskQuota

Message = dict[str, Any]
log = logging.getLogger(__name__)


class KernelConnection(Protocol):
    """A started kernel that runs code for one conversation.

    ``workspace`` is the conversation's folder on this host; ``visible_workspace`` is that folder as the
    kernel names it (its cwd). ``files_elsewhere``: the kernel writes to its own disk, so a file it
    reports reaches ``workspace`` only when the executor copies it back after the run.
    """

    workspace: Path
    quota: DiskQuota | None
    files_elsewhere: bool

    @property
    def visible_workspace(self) -> Path | PurePosixPath: ...

    def host_path(self, reported: str) -> str:
        """A path the kernel reported, as a path in ``workspace`` (unchanged if outside its folder)."""
        ...

    def execute(self, code: str, *, store_history: bool = True) -> str:
        """Send ``code`` to run; returns the request id its iopub messages carry as parent."""
        ...

    async def message(self, wait: float) -> Message | None:
        """The next iopub message (any request), or ``None`` after ``wait`` seconds."""
        ...

    async def reply(self, msg_id: str, wait: float = 5.0) -> Message | None:
        """The shell reply content to ``msg_id`` (``None`` after ``wait``); earlier replies are dropped."""
        ...

    async def request(self, code: str, user_expressions: dict[str, str] | None = None,
                      wait: float = 60.0) -> Message:
        """Run ``code`` silently and return the reply content; ``TimeoutError`` if none comes."""
        ...

    async def interrupt(self) -> None: ...

    async def is_alive(self) -> bool: ...

    async def shutdown(self) -> None:
        """Stop the kernel and free what it holds. Safe to call twice."""
        ...


async def defined_names(kernel: KernelConnection, names: Iterable[str]) -> set[str]:
    """Which of ``names`` are variables in ``kernel`` now; empty when none is asked or the kernel
    does not answer within a few seconds (a lookup must never hold up a turn)."""
    wanted = sorted(n for n in names if n.isidentifier())
    if not wanted:
        return set()
    try:
        reply = await kernel.request("", {"names": f"[n for n in {wanted!r} if n in get_ipython().user_ns]"},
                                     wait=5.0)
        found = ast.literal_eval(reply["user_expressions"]["names"]["data"]["text/plain"])
    except Exception:
        log.debug("variable lookup failed", exc_info=True)
        return set()
    return {str(n) for n in found}
