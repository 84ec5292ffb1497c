"""``TeamsSurface``: the engine's reply handle for one Teams thread (personal chat, channel reply
chain or group chat). All sends go through ``Sender`` (rate limits, retries)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from botbuilder.schema import Activity, ActivityTypes, Attachment, ConversationReference

from adapters.teams.config import TeamsSettings
from adapters.teams.entities import MentionEntity
from adapters.teams.files import IMAGE_TYPES, consent_card, file_link, inline_image, seal_file
from adapters.teams.live import EditedLive, StreamedLive, text_activity
from adapters.teams.sender import Sender
from bot.agents.base import Conversation
from bot.messages import MessageRef, RemoteFile, ThreadKey
from bot.reply import Reply
from bot.storage.base import StateStore
from bot.surface import LiveMessage, SurfaceError
from bot.tokens import TokenSigner
from bot.workspace import human_size
from renderers.teams import card, message_text, needs_card, split_message

log = logging.getLogger(__name__)

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
#: Hosts that get the bot's token on downloads (Bot Connector attachment URLs). Files shared in
#: personal chats come with pre-authenticated SharePoint URLs and get no token.
TOKEN_HOSTS = ("smba.trafficmanager.net", ".botframework.com", ".botframework.us", ".teams.microsoft.com")
#: Seconds a file consent offer stays valid.
CONSENT_TTL = 24 * 3600.0


@dataclass(frozen=True)
class TeamsContext:
    """What every Teams surface shares: the sender, settings, token signer and HTTP helpers."""

    sender: Sender
    settings: TeamsSettings
    signer: TokenSigner
    state: StateStore
    http: Callable[[], aiohttp.ClientSession]
    bot_token: Callable[[], Awaitable[str | None]]
    #: Stops the running turn of a thread (``Engine.cancel``): the Stop button of a Teams stream.
    cancel: Callable[[ThreadKey], object] = lambda thread: False


def wants_token(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return urlsplit(url).scheme == "https" and any(host == h or host.endswith(h) for h in TOKEN_HOSTS)


def card_activity(reply: Reply) -> Activity:
    attachment = Attachment(content_type=ADAPTIVE_CARD, content=card(reply))
    return Activity(type=ActivityTypes.message, attachments=[attachment], summary=reply.summary or None)


class TeamsSurface:
    """Replies in one thread; ``reference`` addresses it (channel ids carry ``;messageid=``)."""

    live_interval = 1.5

    def __init__(
        self,
        ctx: TeamsContext,
        reference: ConversationReference,
        thread: ThreadKey,
        conversation_type: str,
        names: dict[str, str] | None = None,
    ) -> None:
        self._ctx = ctx
        self.reference = reference
        self.thread = thread
        self.personal = conversation_type == "personal"
        self.group_chat = conversation_type == "groupChat"
        self._names = names or {}

    # ---- messages -----------------------------------------------------------------------------

    async def start_live(self, reply: Reply) -> LiveMessage:
        if self.personal:
            return await StreamedLive.start(self._ctx.sender, self.reference, reply,
                                            on_stop=lambda: self._ctx.cancel(self.thread))
        return await EditedLive.start(self._ctx.sender, self.reference, reply)

    def _activities(self, reply: Reply) -> list[Activity]:
        if needs_card(reply):
            return [card_activity(reply)]
        return [text_activity(piece, reply.summary) for piece in split_message(message_text(reply))]

    async def post(self, reply: Reply) -> MessageRef | None:
        first: str | None = None
        for activity in self._activities(reply):
            sent = await self._ctx.sender.send(self.reference, activity)
            first = first or sent
        return MessageRef(self.reference.conversation.id, first) if first else None

    async def update(self, ref: MessageRef, reply: Reply) -> None:
        activity = self._activities(reply)[0]
        await self._ctx.sender.update(self.reference, ref.id, activity)

    async def notify(self, user: str, reply: Reply) -> None:
        """Teams has no ephemeral bot messages: in a personal chat this is a normal reply; in
        channels and group chats a reply in the thread that @mentions ``user`` (a 1:1 would need the
        app installed for that person and would pull the note out of its context)."""
        if self.personal:
            await self.post(reply)
            return
        name = self._names.get(user, "there")
        activity = self._activities(reply)[0]
        mention = MentionEntity(user_id=user, name=name)
        if activity.attachments:
            activity.text = mention.text
        else:
            activity.text = f"{mention.text} {activity.text}"
        activity.entities = [mention]
        await self._ctx.sender.send(self.reference, activity)

    async def set_status(self, text: str | None) -> None:
        # Personal chats stream (the informative update is the indicator, and a plain typing
        # activity would interfere with the stream); channels show no typing.
        if text is None or not self.group_chat:
            return
        await self._ctx.sender.send(self.reference, Activity(type=ActivityTypes.typing))

    # ---- files --------------------------------------------------------------------------------

    async def upload(self, path: Path, *, name: str, title: str | None = None) -> None:
        if path.suffix.lower() in IMAGE_TYPES:
            try:
                uri, scaled = await asyncio.to_thread(inline_image, path)
            except Exception:
                log.warning("could not inline %s; sending it as a file", name, exc_info=True)
            else:
                image = Attachment(content_type="image/png" if scaled else IMAGE_TYPES[path.suffix.lower()],
                                   content_url=uri, name=name)
                caption = title or name
                if scaled:
                    caption += " (scaled down; the full-size file follows)"
                activity = Activity(type=ActivityTypes.message, text=caption, attachments=[image])
                await self._ctx.sender.send(self.reference, activity)
                if not scaled:
                    return
        await self._offer(path, name, title)

    async def _conversation(self) -> Conversation:
        conversation = await self._ctx.state.conversation(self.thread)
        if conversation is None:
            raise SurfaceError("this conversation has no workspace")
        return conversation

    async def _offer(self, path: Path, name: str, title: str | None) -> None:
        conversation = await self._conversation()
        size = (await asyncio.to_thread(path.stat)).st_size
        if self.personal:
            token = seal_file(self._ctx.signer, "consent", conversation, path, CONSENT_TTL)
            offer = consent_card(name, size, token)
            attachment = Attachment(content_type=offer["contentType"], name=name, content=offer["content"])
            await self._ctx.sender.send(self.reference, Activity(type=ActivityTypes.message, attachments=[attachment]))
            return
        token = seal_file(self._ctx.signer, "dl", conversation, path, self._ctx.settings.link_ttl)
        url = file_link(self._ctx.settings.public_url, token)
        hours = self._ctx.settings.link_ttl / 3600
        valid = f"{hours / 24:.0f} days" if hours >= 48 else f"{hours:.0f} hours"
        text = f"📎 [{name}]({url}) · {human_size(size)}" + (f" · {title}" if title and title != name else "")
        await self._ctx.sender.send(self.reference, text_activity(f"{text}\n\n_The link works for {valid}._"))

    async def download(self, file: RemoteFile, limit: int) -> bytes:
        headers: dict[str, Any] = {}
        if wants_token(file.url):
            token = await self._ctx.bot_token()
            if token:
                headers["Authorization"] = f"Bearer {token}"
        try:
            async with self._ctx.http().get(file.url, headers=headers) as response:
                if response.status != 200:
                    raise SurfaceError(f"Teams refused the download (HTTP {response.status})")
                declared = response.content_length
                if declared is not None and declared > limit:
                    raise SurfaceError(f"the file is larger than {human_size(limit)}")
                data = await response.content.read(limit + 1)
        except aiohttp.ClientError as exc:
            raise SurfaceError("the file could not be downloaded") from exc
        if len(data) > limit:
            raise SurfaceError(f"the file is larger than {human_size(limit)}")
        return data
