"""``TeamsSurface``: the engine's reply handle for one Teams thread (personal chat, channel reply
chain or group chat). All sends go through ``Sender`` (rate limits, retries)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from botbuilder.schema import Activity, ActivityTypes, Attachment, ConversationReference

from adapters.http import host_in, read_capped
from adapters.teams.config import TeamsSettings
from adapters.teams.entities import MentionEntity
from adapters.teams.files import IMAGE_TYPES, FileLinks, consent_card, file_link, inline_image
from adapters.teams.first_contact import suggested_actions
from adapters.teams.sender import Sender, TeamsRefused
from adapters.teams.transport import ADAPTIVE_CARD, TeamsTransport, text_activity
from bot.intents import LinkPurpose
from bot.message_records import MessageRecords
from bot.messages import MessageRef, RemoteFile, ThreadKey
from bot.presenter import OUTPUT_CHARS
from bot.reply import Chart, Reply
from bot.surface import Refused, SurfaceError
from bot.workspace import human_size
from renderers.teams import card, message_text, needs_card, split_message

log = logging.getLogger(__name__)

#: Domains (and their subdomains) that get the bot's token on downloads, over HTTPS only: Bot
#: Connector attachment URLs. Files shared in personal chats come with pre-authenticated
#: SharePoint URLs and get no token.
TOKEN_DOMAINS = ("smba.trafficmanager.net", "botframework.com", "botframework.us", "teams.microsoft.com")
#: Domains attachments are fetched from at all (HTTPS only): the Bot Connector, Teams' image
#: store, SharePoint / OneDrive (files in personal chats) and Microsoft Graph. Anything else (an
#: internal address such as ``169.254.169.254`` in a crafted activity) is refused.
DOWNLOAD_DOMAINS = (
    *TOKEN_DOMAINS, "botframework.azure.us", "teams.microsoft.us", "asm.skype.com",
    "sharepoint.com", "sharepoint.us", "sharepoint-mil.us", "graph.microsoft.com", "graph.microsoft.us",
)
NOT_TEAMS = "that link does not point to Microsoft Teams or SharePoint, so I did not fetch it."
MAX_REDIRECTS = 3
REDIRECTS = (301, 302, 303, 307, 308)
#: Seconds a file consent offer stays valid.
CONSENT_TTL = 24 * 3600.0


@dataclass
class NativeCharts:
    """Small charts go as Adaptive Card charts until the Bot Connector refuses a card with one
    (HTTP 400); PNGs for the rest of the process after that."""

    on: bool = True


@dataclass(frozen=True)
class TeamsContext:
    """What every Teams surface shares: the sender, settings, file links and HTTP helpers."""

    sender: Sender
    settings: TeamsSettings
    links: FileLinks
    http: Callable[[], aiohttp.ClientSession]
    bot_token: Callable[[], Awaitable[str | None]]
    #: Which card carries a token (clicks that do not name their card) and which turn a rated
    #: message answers (Teams' feedback invoke names only the message): shared by replicas.
    records: MessageRecords
    #: Whether small charts go as Adaptive Card charts (see ``NativeCharts``).
    charts: NativeCharts = field(default_factory=NativeCharts)


def wants_token(url: str) -> bool:
    """Whether a download from ``url`` carries the bot's Bot Framework token."""
    parts = urlsplit(url)
    return parts.scheme == "https" and host_in(parts.hostname or "", TOKEN_DOMAINS)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:  # a malformed port
        return ("", "", None)
    return parts.scheme, (parts.hostname or "").lower(), port


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def download_allowed(url: str, service_url: str | None, local: bool) -> bool:
    """Whether an attachment may be fetched from ``url``: a Microsoft host over HTTPS; the origin of
    the activity's own ``serviceUrl`` when requests are authenticated (the Bot Framework signs that
    URL into its token); or, only in the local unauthenticated mode (Bot Framework Emulator, tests),
    a loopback address. Unauthenticated, the serviceUrl is whatever the sender wrote: not trusted."""
    origin = _origin(url)
    scheme, host, _ = origin
    if scheme == "https" and host_in(host, DOWNLOAD_DOMAINS):
        return True
    if local:
        return scheme in ("http", "https") and _loopback(host)
    return bool(service_url and host and origin == _origin(service_url))


def card_activity(reply: Reply) -> Activity:
    attachment = Attachment(content_type=ADAPTIVE_CARD, content=card(reply))
    return Activity(type=ActivityTypes.message, attachments=[attachment], summary=reply.summary or None)


class TeamsSurface:
    """Replies in one thread; ``reference`` addresses it (channel ids carry ``;messageid=``)."""

    live_interval = 1.5
    #: Characters of code output one turn message shows (the presenter's default).
    output_chars = OUTPUT_CHARS

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
        self.conversation_type = conversation_type
        self.personal = conversation_type == "personal"
        #: Teams has no ephemeral bot messages: only a personal chat is private.
        self.private_notices = self.personal
        #: Set by the adapter when this message started the conversation: its answer, in a personal
        #: chat, carries the follow-ups as suggested actions (Teams shows them there only).
        self.first_answer = False
        self.group_chat = conversation_type == "groupChat"
        self._names = names or {}

    def address(self) -> dict[str, Any]:
        """``bot.journal.Addressable``: the conversation reference (JSON), enough to reach the
        thread again after a restart (``TeamsBot.resume``)."""
        return {"reference": self.reference.serialize(), "type": self.conversation_type}

    # ---- messages -----------------------------------------------------------------------------

    def live_transport(self) -> TeamsTransport:
        follow_ups = self.personal and self.first_answer
        return TeamsTransport(self._ctx.sender, self.reference, personal=self.personal, interval=self.live_interval,
                              rated=self._rated,
                              suggestions=suggested_actions(self._ctx.settings.follow_ups) if follow_ups else None)

    async def _rated(self, message_id: str, turn: str) -> None:
        await self._ctx.records.rated(self.thread, message_id, turn)

    @property
    def native_charts(self) -> bool:
        """Small charts go as Adaptive Card charts (their numbers as the fallback of clients that
        draw none) until the Bot Connector refuses one."""
        return self._ctx.charts.on

    def _activities(self, reply: Reply) -> list[Activity]:
        if needs_card(reply):
            return [card_activity(reply)]
        return [text_activity(piece, reply.summary) for piece in split_message(message_text(reply))]

    async def post(self, reply: Reply) -> MessageRef | None:
        first: str | None = None
        for activity in self._activities(reply):
            try:
                sent = await self._ctx.sender.send(self.reference, activity)
            except TeamsRefused as exc:
                if exc.status == 400 and any(isinstance(b, Chart) for b in reply.blocks):
                    log.info("Teams refused a card chart (%s); charts are PNGs from now on", exc.code or exc.status)
                    self._ctx.charts.on = False
                    raise Refused("Teams does not show charts in cards here.") from exc
                raise
            first = first or sent
        if first and needs_card(reply):
            await self._ctx.records.card_shows(self.thread, first, reply)
        return MessageRef(self.reference.conversation.id, first) if first else None

    async def update(self, ref: MessageRef, reply: Reply) -> None:
        activity = self._activities(reply)[0]
        await self._ctx.sender.update(self.reference, ref.id, activity)
        if needs_card(reply):
            await self._ctx.records.card_shows(self.thread, ref.id, reply)

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

    async def _link(self, path: Path, purpose: LinkPurpose, ttl: float) -> str:
        token = await self._ctx.links.file_link(self.thread, path, purpose=purpose, ttl=ttl)
        if token is None:
            raise SurfaceError("this conversation has no workspace")
        return token

    async def _offer(self, path: Path, name: str, title: str | None) -> None:
        size = (await asyncio.to_thread(path.stat)).st_size
        if self.personal:
            token = await self._link(path, "consent", CONSENT_TTL)
            offer = consent_card(name, size, token)
            attachment = Attachment(content_type=offer["contentType"], name=name, content=offer["content"])
            await self._ctx.sender.send(self.reference, Activity(type=ActivityTypes.message, attachments=[attachment]))
            return
        token = await self._link(path, "download", self._ctx.settings.link_ttl)
        url = file_link(self._ctx.settings.public_url, token)
        hours = self._ctx.settings.link_ttl / 3600
        valid = f"{hours / 24:.0f} days" if hours >= 48 else f"{hours:.0f} hours"
        text = f"📎 [{name}]({url}) · {human_size(size)}" + (f" · {title}" if title and title != name else "")
        await self._ctx.sender.send(self.reference, text_activity(f"{text}\n\n_The link works for {valid}._"))

    async def download(self, file: RemoteFile, limit: int) -> bytes:
        local = not self._ctx.settings.authenticated
        url = file.url
        try:
            # Redirects are followed by hand so that every hop passes the same host checks.
            for _ in range(MAX_REDIRECTS + 1):
                if not download_allowed(url, self.reference.service_url, local):
                    log.warning("refused to fetch an attachment from host %r", urlsplit(url).hostname)
                    raise SurfaceError(NOT_TEAMS)
                headers: dict[str, Any] = {}
                if wants_token(url) and (token := await self._ctx.bot_token()):
                    headers["Authorization"] = f"Bearer {token}"
                async with self._ctx.http().get(url, headers=headers, allow_redirects=False) as response:
                    if response.status in REDIRECTS and response.headers.get("Location"):
                        url = urljoin(url, response.headers["Location"])
                        continue
                    if response.status != 200:
                        raise SurfaceError(f"Teams refused the download (HTTP {response.status})")
                    return await read_capped(response, limit)
        except aiohttp.ClientError as exc:
            raise SurfaceError("the file could not be downloaded") from exc
        raise SurfaceError("Teams redirected that file too many times.")
