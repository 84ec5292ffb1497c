"""Where a verified inbound message goes when turns are shared by several replicas.

The embedded default has no intake: surfaces hand messages straight to ``Engine.submit``. With a
``TurnIntake`` (``bot.aws.turn_queue``), a surface hands the message and the few facts needed to
rebuild its reply handle on another replica; whichever replica receives it runs the turn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from bot.journal import JournalStore
from bot.messages import IncomingMessage, ThreadKey
from bot.surface import Surface

#: Rebuilds a surface on the receiving replica from what ``TurnIntake.submit`` was given.
SurfaceRebuilder = Callable[[IncomingMessage, Mapping[str, Any]], Surface]


class TurnIntake(Protocol):
    def register(self, platform: str, rebuild: SurfaceRebuilder) -> None:
        """Turns of ``platform`` can run on this replica, with surfaces made by ``rebuild``."""
        ...

    async def submit(self, message: IncomingMessage, surface_args: Mapping[str, Any]) -> None:
        """Claim the delivery once and queue the turn (JSON-serialisable ``surface_args``)."""
        ...

    @property
    def journal(self) -> JournalStore:
        """Where the engine journals the turns this intake hands it (their live message ids), so the
        replica that receives a dead replica's turn can end what that turn showed."""
        ...

    async def cancel_remote(self, thread: ThreadKey) -> bool:
        """Ask the replica running ``thread``'s turn to stop it; False if none is running."""
        ...

    def start(self) -> None:
        """Start receiving turns (from a running loop)."""
        ...

    async def aclose(self) -> None: ...
