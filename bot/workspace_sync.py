"""Keeping a conversation's workspace the same on every replica (none in the embedded default).

The engine pulls before every turn and pushes after every code run that made files (when their
``FileProduced`` arrives) and after the turn; file actions (list, post, download) pull
first, so the files list shows the same files whichever replica answers the click.
"""

from __future__ import annotations

from typing import Protocol

from bot.workspace import Workspace


class WorkspaceSync(Protocol):
    async def pull(self, conversation_id: str, workspace: Workspace) -> None:
        """Bring ``workspace`` up to date with the shared copy (new, changed and deleted files)."""
        ...

    async def push(self, conversation_id: str, workspace: Workspace) -> None:
        """Publish what changed in ``workspace`` since the last pull or push."""
        ...
