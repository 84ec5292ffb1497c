"""Mounts Teams on the ``datathread serve`` app: POST ``/api/messages`` and GET ``/files/{token}``.

The Bot Framework request is verified by botbuilder's ``CloudAdapter`` and answered at once; the
turn runs in the background and every reply is sent later with ``continue_conversation`` through
``Sender`` (rate limits, retries). Nothing outside this package imports botbuilder.

Conversation references are not stored: each inbound activity (a message, an ``Action.Submit``
click, a FileConsent answer) carries its own reference, the turn it starts keeps that reference in
memory for as long as it runs, and turns do not survive a restart (the engine does not resume
them). The bot never messages a conversation that did not just write to it, so a stored reference
would never be read. Redelivered activity ids are claimed in the state store, so a retry, even
after a restart, never starts a second turn, click or upload.

With a shared turn queue (``DATATHREAD_STORE=aws``) a message is claimed and queued by whichever
replica receives it, with its conversation reference as JSON (``TeamsSurface.address``), and the
replica that takes it from the queue rebuilds the surface from that (``rebuild``) and replies with
``continue_conversation``. Clicks and invokes run where they arrive: their activity carries its own
reference, and a Stop reaches the replica running the turn through the engine. What an activity
leaves out is read from records every replica shares and a restart keeps
(``Engine.message_records``): the card a click came from (by the token it carries) when the click
does not name it, and the turn a 👍 / 👎 rates (Teams' invoke names only the rated message).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp import web
from botbuilder.core import InvokeResponse, TurnContext
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
    ConfigurationServiceClientCredentialFactory,
)
from botbuilder.schema import Activity, ActivityTypes, Attachment, ConversationReference
from botframework.connector.auth import AuthenticationConstants

from adapters.background import BackgroundWork
from adapters.http import read_request
from adapters.teams.config import TeamsSettings
from adapters.teams.files import download_handler, file_info_card, put_file
from adapters.teams.first_contact import bot_added, welcome_activity
from adapters.teams.inbound import (
    PLATFORM,
    conversation_type,
    reply_conversation_id,
    thread_key,
    to_action,
    to_feedback,
    to_incoming,
)
from adapters.teams.inbound import user_name as activity_user_name
from adapters.teams.sender import Sender
from adapters.teams.surface import TeamsContext, TeamsSurface
from adapters.teams.transport import text_activity
from bot.config import Settings
from bot.engine import Engine
from bot.intents import Feedback
from bot.journal import TurnInFlight
from bot.messages import IncomingMessage, MessageRef
from bot.reply import notice
from bot.surface import SurfaceError

log = logging.getLogger(__name__)


class TeamsBot:
    """Turns verified activities into engine work. Created by ``mount``; one per process."""

    def __init__(self, engine: Engine, settings: TeamsSettings, adapter: CloudAdapter,
                 credentials: ConfigurationServiceClientCredentialFactory) -> None:
        self.engine = engine
        self.settings = settings
        self.adapter = adapter
        self._credentials = credentials
        self.sender = Sender(adapter, settings.app_id)
        self.ctx = TeamsContext(self.sender, settings, engine, self.http, self.bot_token, engine.message_records)
        self._session: aiohttp.ClientSession | None = None
        self._background = BackgroundWork()
        self._names: dict[str, str] = {}
        if engine.intake is not None:  # turns shared by replicas: any of them may run this one
            engine.intake.register(PLATFORM, self.rebuild)

    # ---- shared helpers -----------------------------------------------------------------------

    def http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300))
        return self._session

    async def bot_token(self) -> str | None:
        """The bot's Bot Framework token (for smba attachment downloads); ``None`` without auth."""
        if not self.settings.authenticated:
            return None
        credentials = await self._credentials.create_credentials(
            self.settings.app_id,
            AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE,
            AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL,
            True,
        )
        return str(await asyncio.to_thread(credentials.get_access_token))

    async def _first_time(self, kind: str, activity_id: str | None) -> bool:
        """True the first time a click or invoke id is seen (persistently, like messages in the engine)."""
        if not activity_id:
            return True
        return await self.engine.claim_event(f"teams:{kind}:{activity_id}")

    async def aclose(self) -> None:
        await self._background.aclose()
        if self._session is not None:
            await self._session.close()

    # ---- turns --------------------------------------------------------------------------------

    def surface_for(self, context: TurnContext, raw: dict[str, Any]) -> TeamsSurface:
        reference = TurnContext.get_conversation_reference(context.activity)
        reference.conversation.id = reply_conversation_id(raw)  # channel posts: answer in the chain
        user = str((raw.get("from") or {}).get("id") or "")
        self._names[user] = activity_user_name(raw)
        return TeamsSurface(self.ctx, reference, thread_key(raw), conversation_type(raw), self._names)

    def resume(self, turn: TurnInFlight) -> TeamsSurface:
        """The surface of a turn journalled before a restart (``TeamsSurface.address``)."""
        reference = ConversationReference().deserialize(turn.address.get("reference") or {})
        return TeamsSurface(self.ctx, reference, turn.thread, str(turn.address.get("type") or ""), self._names)

    def rebuild(self, message: IncomingMessage, args: Mapping[str, Any]) -> TeamsSurface:
        """The surface of a queued turn, on whichever replica runs it: ``args`` is what ``queued``
        gave the intake (the reference with its service URL, tenant and reply-to id; the
        conversation type, which decides streaming; the sender's display name for mentions)."""
        if name := args.get("user_name"):
            self._names[message.user] = str(name)
        reference = ConversationReference().deserialize(args.get("reference") or {})
        surface = TeamsSurface(self.ctx, reference, message.thread, str(args.get("type") or ""), self._names)
        surface.first_answer = bool(args.get("first_answer"))
        return surface

    def queued(self, message: IncomingMessage, surface: TeamsSurface) -> dict[str, Any]:
        """The JSON ``rebuild`` needs to reach ``surface``'s thread from another replica."""
        return {**surface.address(), "user_name": self._names.get(message.user),
                "first_answer": surface.first_answer}

    def start(self) -> None:
        """At start-up, in the background (the Bot Connector may be slow to answer): end the Teams
        turns a crash cut off (``bot.recovery``)."""
        self._background.spawn(self.engine.end_interrupted(PLATFORM, self.resume), "ending interrupted Teams turns")

    async def on_turn(self, context: TurnContext, raw: dict[str, Any]) -> None:
        """Runs inside the inbound request: must not wait for the agent."""
        kind = raw.get("type")
        if kind == ActivityTypes.invoke:
            # Answered at once, redelivery or not: Teams shows an error for an unanswered invoke.
            await context.send_activity(Activity(type=ActivityTypes.invoke_response, value=InvokeResponse(status=200)))
            if raw.get("name") == "fileConsent/invoke" and await self._first_time("invoke", raw.get("id")):
                self._background.spawn(self._consent(self.surface_for(context, raw), raw), "Teams file consent")
            verdict = to_feedback(raw)
            if verdict is not None and await self._first_time("invoke", raw.get("id")):
                positive, comment, message_id = verdict
                surface = self.surface_for(context, raw)
                # Any replica, any time after a restart: the record says which turn the message answers.
                turn = await self.engine.message_records.turn_of(surface.thread, message_id)
                intent = Feedback(positive, turn, comment)
                user = str((raw.get("from") or {}).get("id") or "")
                self._background.spawn(self.engine.request(intent, surface.thread, user, surface), "Teams feedback")
            return
        if kind == ActivityTypes.conversation_update:
            if conversation_type(raw) == "personal" and bot_added(raw):
                conversation = str((raw.get("conversation") or {}).get("id") or "")
                if await self.engine.claim_event(f"teams:welcome:{conversation}"):
                    reference = TurnContext.get_conversation_reference(context.activity)
                    self._background.spawn(self.sender.send(reference, welcome_activity(self.settings.prompts)),
                                           "Teams welcome")
            return
        if kind != ActivityTypes.message:
            return
        action = to_action(raw)
        if action is not None:
            if await self._first_time("action", raw.get("id")):
                surface = self.surface_for(context, raw)
                if action.message is None and \
                        (card_id := await self.engine.message_records.card_with(surface.thread, action.token)):
                    # The click did not name its card: the token it carries does (whichever replica sent it).
                    action = replace(action, message=MessageRef(surface.reference.conversation.id, card_id))
                self._background.spawn(self.engine.act(action, surface), f"Teams {action.kind} action")
            return
        message = to_incoming(raw)
        if message is None:
            return
        if self.engine.intake is not None:
            # Turns shared by replicas: answered only once claimed and queued, so a replica killed
            # in between loses nothing (the Bot Connector delivers it again, to any replica).
            await self._submit(message, self.surface_for(context, raw))
            return
        self._background.spawn(self._submit(message, self.surface_for(context, raw)), "Teams turn")

    async def _submit(self, message: IncomingMessage, surface: TeamsSurface) -> None:
        """Hand ``message`` to the engine, or to the shared intake (claimed once by its activity id,
        run by any replica). In a personal chat, a message that starts the conversation (the chat's
        person owns it, as the engine would decide) gets follow-ups under its answer."""
        if surface.personal:
            _, existed = await self.engine.open_conversation(message.thread, message.user)
            surface.first_answer = not existed
        if self.engine.intake is not None:
            await self.engine.intake.submit(message, self.queued(message, surface))
            return
        # The engine dedupes message event ids persistently: a redelivery never starts a second turn.
        await self.engine.submit(message, surface)

    async def _consent(self, surface: TeamsSurface, raw: dict[str, Any]) -> None:
        value = raw.get("value") or {}
        token = str(((value.get("context") or {}).get("token")) or "")
        path = await self.engine.open_file_link(token, purpose="consent", thread=surface.thread)
        card_id = str(raw.get("replyToId") or "")
        if value.get("action") != "accept":
            if card_id:
                await self.sender.update(surface.reference, card_id, text_activity("_File not sent (declined)._"))
            return
        if path is None:
            await surface.post(notice("That file offer has expired. Ask for the file again.", "warning"))
            return
        upload_info = value.get("uploadInfo") or {}
        try:
            await put_file(self.http(), str(upload_info.get("uploadUrl")), path)
        except (SurfaceError, aiohttp.ClientError) as exc:
            log.warning("file consent upload failed: %s", exc)
            await surface.post(notice(f"Could not upload {path.name} to your OneDrive. Try again later.", "error"))
            return
        info = file_info_card(upload_info)
        attachment = Attachment(content_type=info["contentType"], content_url=info["contentUrl"],
                                name=info["name"], content=info["content"])
        await self.sender.send(surface.reference, Activity(type=ActivityTypes.message, attachments=[attachment]))
        if card_id:
            await self.sender.update(surface.reference, card_id, text_activity(f"_Sent {path.name}._"))

    # ---- HTTP ---------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        """POST ``/api/messages``: 503 while the engine takes no new work (the Bot Connector
        retries), 413 for a body over 1 MB (unread), 415/400 for one that is not a JSON activity."""
        if not self.engine.accepting:
            return web.Response(status=503, text="shutting down")
        if "application/json" not in request.headers.get("Content-Type", ""):
            return web.Response(status=415)
        try:
            raw = json.loads(await read_request(request))
            activity = Activity().deserialize(raw)
        except web.HTTPRequestEntityTooLarge:
            log.warning("rejected a Bot Framework request: body over the size limit (413)")
            return web.Response(status=413)
        except (ValueError, TypeError, AttributeError):  # not JSON, or JSON botbuilder cannot read
            return web.Response(status=400)
        if not isinstance(raw, dict) or not activity.type:
            return web.Response(status=400)
        auth = request.headers.get("Authorization", "")

        async def logic(context: TurnContext) -> None:
            try:
                await self.on_turn(context, raw)
            except Exception:  # ours, not authentication: keep it apart from the 401 below
                log.exception("handling a Teams %s activity failed", raw.get("type"))

        try:
            invoke = await self.adapter.process_activity(auth, activity, logic)
        except Exception as exc:  # PermissionError, or a malformed token botbuilder could not parse
            log.warning("rejected a Bot Framework request: %s", type(exc).__name__)
            return web.Response(status=401)
        if invoke is not None:
            return web.json_response(invoke.body or {}, status=invoke.status)
        return web.Response(status=202)


BOT_KEY = web.AppKey("teams_bot", TeamsBot)


def build_adapter(settings: TeamsSettings) -> tuple[CloudAdapter, ConfigurationServiceClientCredentialFactory]:
    if settings.authenticated:
        config = SimpleNamespace(APP_ID=settings.app_id, APP_PASSWORD=settings.app_password,
                                 APP_TENANTID=settings.tenant_id, APP_TYPE=settings.app_type)
    else:
        # botbuilder's "MultiTenant" type with no app id is its documented auth-disabled mode.
        config = SimpleNamespace(APP_ID="", APP_PASSWORD="", APP_TYPE="MultiTenant")
    credentials = ConfigurationServiceClientCredentialFactory(config)
    auth = ConfigurationBotFrameworkAuthentication(config, credentials_factory=credentials)
    return CloudAdapter(auth), credentials


async def mount(app: web.Application, engine: Engine, settings: Settings, env: Mapping[str, str]) -> bool:
    """Add the Teams routes when Teams is configured; False (nothing added) when it is not."""
    teams = TeamsSettings.from_env(env)
    if teams is None:
        return False
    if not teams.authenticated:
        log.warning("!" * 72)
        log.warning("TEAMS RUNS WITHOUT AUTHENTICATION (DATATHREAD_TEAMS_ALLOW_UNAUTHENTICATED=1).")
        log.warning("Anyone who can reach /api/messages can talk to the bot. For local testing only.")
        log.warning("!" * 72)
    adapter, credentials = build_adapter(teams)
    bot = TeamsBot(engine, teams, adapter, credentials)
    app[BOT_KEY] = bot
    app.router.add_post("/api/messages", bot.handle)
    app.router.add_get("/files/{token}", download_handler(engine))

    async def close(app: web.Application) -> None:
        await bot.aclose()

    async def recover(app: web.Application) -> None:
        bot.start()

    app.on_startup.append(recover)
    app.on_cleanup.append(close)
    log.info("Teams endpoint mounted at /api/messages (app id %s)", teams.app_id or "none: local mode")
    return True
