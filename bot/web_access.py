"""Who may open a conversation's workspace in the browser: links, sessions, revocation, datasets.

A workspace link carries a signed, expiring ``WebPass`` bound to one conversation and its owner
(sealed by ``IntentSealer``, the one place tokens are sealed). The browser exchanges it once for a
session cookie carrying the same grant. Every request re-checks the grant against the state store:
the thread's conversation must still be that conversation, and the conversation's link generation
must not have moved on (``revoke`` moves it, voiding every earlier link and session at once, on
every replica that shares the state store and the secret).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from bot.config import Settings
from bot.conversation import Conversation
from bot.datasets.model import ChartSpec, DatasetMeta, DatasetNotFound, DatasetStore, ExportFormat, SortSpec
from bot.intent_tokens import IntentSealer
from bot.intents import WebPass
from bot.storage.base import StateStore
from bot.workspace import Workspace

#: State-store namespace of each conversation's link generation.
GENERATIONS = "web-generation"
#: What a dataset of another conversation or owner looks like: the same as one that never existed.
NO_SUCH_DATASET = "That dataset is not in this conversation."


class WorkspaceAccess:
    """Issues workspace links and sessions and decides, per request, whether they still hold."""

    def __init__(self, settings: Settings, state: StateStore, datasets: DatasetStore, tokens: IntentSealer) -> None:
        self.settings = settings
        self.state = state
        self.datasets = datasets
        self.tokens = tokens
        #: Where browsers reach the web server: ``DATATHREAD_PUBLIC_URL``, else set by ``serve_at``.
        self.base_url: str | None = settings.public_url

    def serve_at(self, url: str) -> None:
        """Record the web server's own address, used for links unless ``DATATHREAD_PUBLIC_URL`` is set."""
        if self.settings.public_url is None:
            self.base_url = url.rstrip("/")

    @property
    def ttl(self) -> float:
        """Seconds a link (and the session it opens) lasts."""
        return self.settings.web_link_hours * 3600

    async def generation(self, conversation_id: str) -> int:
        """The conversation's current link generation (0 until the first revoke)."""
        value = await self.state.get_value(GENERATIONS, conversation_id)
        return value if type(value) is int else 0

    async def link(self, conversation: Conversation, *, now: float | None = None) -> str | None:
        """A link to the conversation's workspace page for its owner; ``None`` while no web server runs."""
        if self.base_url is None:
            return None
        grant = WebPass(conversation.key, conversation.id, conversation.owner,
                        await self.generation(conversation.id), int((now or time.time()) + self.ttl))
        # The token rides in the fragment: browsers never send it to servers, proxies or logs.
        return f"{self.base_url}/w/open#{self.tokens.seal_pass(grant, 'link')}"

    async def revoke(self, conversation: Conversation) -> None:
        """Void every link and session issued so far for the conversation."""
        await self.state.put_value(GENERATIONS, conversation.id, await self.generation(conversation.id) + 1)

    async def exchange(self, link_token: str, *, now: float | None = None) -> tuple[WebPass, str] | None:
        """The grant of a link that still holds and a session token for it; ``None`` for anything else
        (forged, edited, expired, revoked, another conversation of the thread by now)."""
        grant = self.tokens.open_pass(link_token, "link", now=now)
        if grant is None or not await self._holds(grant):
            return None
        session = replace(grant, expires=int((now or time.time()) + self.ttl))
        return session, self.tokens.seal_pass(session, "session")

    async def session(self, token: str | None, conversation_id: str, *, now: float | None = None) -> WebPass | None:
        """The grant of a session cookie if it is for ``conversation_id`` and still holds; else ``None``."""
        if not token:
            return None
        grant = self.tokens.open_pass(token, "session", now=now)
        if grant is None or grant.conversation != conversation_id or not await self._holds(grant):
            return None
        return grant

    async def _holds(self, grant: WebPass) -> bool:
        conversation = await self.state.conversation(grant.thread)
        return (conversation is not None and conversation.id == grant.conversation
                and conversation.owner == grant.owner
                and await self.generation(grant.conversation) == grant.generation)

    async def workspace(self, grant: WebPass) -> Workspace:
        """The workspace of a grant that held a moment ago (``session`` checked it)."""
        conversation = await self.state.conversation(grant.thread)
        if conversation is None or conversation.id != grant.conversation:
            raise PermissionError("the conversation changed")
        return Workspace(conversation.workspace).ensure()

    async def datasets_of(self, grant: WebPass) -> list[DatasetMeta]:
        """The grant's thread's live datasets that belong to its owner."""
        return [d for d in await self.datasets.list(grant.thread) if d.owner == grant.owner]

    async def chart(self, grant: WebPass, meta: DatasetMeta, spec: ChartSpec, out: Path) -> None:
        """Draw ``spec`` of one of the grant's datasets into ``out`` (the same PNG as the Chart button)."""
        await self.datasets.chart((await self.dataset(grant, meta.id)).id, spec, out)

    async def export(self, grant: WebPass, meta: DatasetMeta, fmt: ExportFormat, out: Path,
                     sort: SortSpec | None = None) -> None:
        """Export one of the grant's datasets, whole and in ``sort`` order, into ``out``."""
        await self.datasets.export((await self.dataset(grant, meta.id)).id, fmt, out, sort)

    async def open_table(self, grant: WebPass, path: Path) -> DatasetMeta | None:
        """Register a tabular workspace file of the grant's conversation as a dataset of its thread."""
        return await self.datasets.register_file(path, name=path.stem, thread=grant.thread, owner=grant.owner)

    async def dataset(self, grant: WebPass, dataset_id: str) -> DatasetMeta:
        """The dataset if it belongs to the grant's thread and owner; ``DatasetNotFound`` (same words as
        an unknown id) otherwise, ``DatasetExpired`` once retention ended."""
        meta = await self.datasets.get(dataset_id)
        if meta.thread != grant.thread or meta.owner != grant.owner:
            raise DatasetNotFound(NO_SUCH_DATASET)
        return meta
