"""Inbound model: what any surface hands the core, already translated at the edge.

Adapters turn platform payloads into these with pure functions; nothing here knows a platform.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class ThreadKey:
    """Identity of one thread on one surface; one thread is one agent conversation.

    ``thread`` is the thread root (Slack ``thread_ts`` or ``ts``, a Teams reply-chain id, a console
    name). ``team`` is the workspace / tenant.
    """

    platform: str
    team: str
    channel: str
    thread: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.team}:{self.channel}:{self.thread}"

    @property
    def digest(self) -> str:
        """Stable, opaque, filesystem- and Bedrock-safe id derived from the key (24 hex chars)."""
        return hashlib.sha256(str(self).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class RemoteFile:
    """A file a user attached, not yet downloaded. The adapter's ``Surface.download`` fetches it."""

    name: str
    url: str
    size: int | None = None
    media_type: str | None = None
    #: The platform's id for the file, when its URLs must be looked up before downloading (Slack
    #: sends ``"file_access": "check_file_info"`` and no URL for some files in shared channels).
    file_id: str | None = None
    #: Why the bot cannot read this file (deleted, hidden by the plan, access denied): the user is
    #: told, with the file's name, instead of the file being dropped without a word.
    unreadable: str | None = None


@dataclass(frozen=True)
class IncomingMessage:
    """One user message addressed to the bot.

    ``text`` has the bot mention and platform markup removed. ``event_id`` identifies the delivery
    so retries can be dropped; ``mentioned`` says whether the bot was addressed explicitly (a
    mention or a direct message), which is what may start a new conversation.
    """

    thread: ThreadKey
    user: str
    text: str
    files: tuple[RemoteFile, ...] = ()
    event_id: str | None = None
    mentioned: bool = True
    #: The thread is a whole chat (a Teams personal chat), so ``new`` / ``reset`` starts afresh.
    resettable: bool = False


@dataclass(frozen=True)
class MessageRef:
    """A message the bot posted, as the adapter needs it to update that message later."""

    channel: str
    id: str


@dataclass(frozen=True)
class ActionInvoked:
    """A button click or select choice. ``token`` is untrusted: the core opens it into an intent on
    every use. ``kind`` is the kind name the platform control carried (``bot.intents.KINDS``), for
    logs only: what the click does is decided by the token alone."""

    kind: str
    token: str
    user: str
    thread: ThreadKey
    message: MessageRef | None = None
