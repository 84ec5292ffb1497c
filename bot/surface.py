"""The adapter contract: what the engine asks of Slack, Teams or the console for one thread.

A ``Surface`` is a thread-bound reply handle (like bolt's ``say``): every call lands in the thread
it was made for. Implementations keep their platform's rate limits and retries to themselves and
raise ``SurfaceError`` for failures the engine should report, a refused private notice included
(the caller decides whether to try the thread instead: ``bot.actions.Origin.tell``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Protocol

from bot.messages import MessageRef, RemoteFile
from bot.reply import Reply
from bot.transport import LiveTransport

log = logging.getLogger(__name__)


class SurfaceError(Exception):
    """A platform call failed in a way the user should hear about; ``str()`` is user-safe."""


class Refused(SurfaceError):
    """The platform refused a form of content it does not know (Slack's ``invalid_blocks`` for a
    block that has not shipped in that workspace): the same content in a plainer form may pass."""


class Surface(Protocol):
    #: Characters of code output one message shows (start and end kept); the console shows it all.
    output_chars: int
    #: Whether ``notify`` reaches ``user`` alone (Slack ephemeral, a personal chat, the console); a
    #: notice that others in the thread would see must never carry a secret such as a workspace link.
    private_notices: bool

    @property
    def native_charts(self) -> bool:
        """Whether ``post`` shows a ``Chart`` block as a chart the platform draws itself (Slack's
        ``data_visualization``); other surfaces are sent the PNG. A surface whose platform refuses
        one raises ``Refused`` from ``post`` and says ``False`` from then on."""
        ...

    def live_transport(self) -> LiveTransport[Any]:
        """A fresh transport for one turn's live message in this thread (see ``bot.live_turn``)."""
        ...

    async def post(self, reply: Reply) -> MessageRef | None:
        """Post a new message in the thread (a dataset page, a notice)."""
        ...

    async def update(self, ref: MessageRef, reply: Reply) -> None:
        """Replace a message the bot posted in this thread (dataset paging)."""
        ...

    async def upload(self, path: Path, *, name: str, title: str | None = None) -> None:
        """Put a workspace file into the thread, byte-identical. Images show inline where possible."""
        ...

    async def set_status(self, text: str | None) -> None:
        """Show (or with ``None`` clear) a 'working' indicator; best effort."""
        ...

    async def notify(self, user: str, reply: Reply) -> None:
        """Show ``reply`` to ``user`` only (ephemeral) where the platform allows; else in the thread.
        ``SurfaceError`` if the platform refused it."""
        ...

    async def download(self, file: RemoteFile, limit: int) -> bytes:
        """Fetch a user's attachment, at most ``limit`` bytes; ``SurfaceError`` says why it failed."""
        ...


async def best_effort(call: Awaitable[Any]) -> None:
    """Await ``call`` and log (not raise) a failure: for status, notices and other extras that must
    never end a turn or hide its real outcome."""
    try:
        await call
    except Exception:
        log.warning("best-effort call failed", exc_info=True)
