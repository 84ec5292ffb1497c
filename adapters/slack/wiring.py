"""Mount the Slack surface: a slack-bolt ``AsyncApp`` over HTTP (``/slack/events``) or Socket Mode.

Every HTTP request passes ``verify.check_request`` first: a body over 1 MB gets 413 unread, a bad
or stale signature 401, a signed body that is not a JSON object 400 (one log line each, never the
body); bolt then verifies again and we acknowledge at once. Payloads are translated by the pure
functions in ``inbound.py`` and handed to the engine in arrival order, running in the background.
Bolt does not drop retries: the engine does, by ``event_id`` (channel + message ts), persistently.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import ClientConnectorError, web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from adapters.background import BackgroundWork
from adapters.health import Health, health_of
from adapters.http import read_request
from adapters.slack import workflow_step
from adapters.slack.budget import RateBudget
from adapters.slack.context import SlackContext
from adapters.slack.inbound import PLATFORM, receiving_team, session_stopped, to_action, to_incoming
from adapters.slack.pool import web_api_session
from adapters.slack.surface import SlackSurface, with_file_info
from adapters.slack.verify import Rejection, check_request
from bot.config import Settings, env_number
from bot.engine import Engine
from bot.first_contact import DEFAULT_PROMPTS, Prompt, prompts_from_env
from bot.intents import Stop
from bot.journal import TurnInFlight
from bot.messages import ActionInvoked, ThreadKey
from bot.surface import best_effort
from bot.welcome import welcome_text
from renderers.slack import ACTION_PREFIX, escape

log = logging.getLogger(__name__)

PATH = "/slack/events"
#: Bot events and the scopes that deliver them (checked against the manifest by a test).
EVENTS = ("app_mention", "message.channels", "message.groups", "message.im", "message.mpim", "agent_session_stopped",
          "assistant_thread_started", "app_home_opened")
SCOPES = ("app_mentions:read", "channels:history", "groups:history", "im:history", "mpim:history")
DEFAULT_API_URL = "https://slack.com/api/"

#: Where ``mount`` keeps the adapter on the aiohttp app (tests and benchmarks reach it here).
ADAPTER_KEY = web.AppKey("slack_adapter", object)


@dataclass(frozen=True)
class SlackSettings:
    """Slack's own environment. ``from_env`` returns ``None`` when Slack is not configured."""

    bot_token: str
    signing_secret: str
    app_token: str | None = None
    api_url: str = DEFAULT_API_URL
    http_timeout: float = 30.0
    updates_per_minute: float = 45.0  # chat.update: Slack allows ~50 per minute per workspace
    stream_appends_per_minute: float = 100.0  # Slack documents appendStream as Tier 4: 100+ per minute
    #: Offered when a person opens a new DM / assistant thread (``DATATHREAD_SUGGESTED_PROMPTS``).
    prompts: tuple[Prompt, ...] = DEFAULT_PROMPTS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SlackSettings | None:
        token, secret = env.get("SLACK_BOT_TOKEN", ""), env.get("SLACK_SIGNING_SECRET", "")
        if not token or not secret:
            return None
        api_url = env.get("SLACK_API_URL") or DEFAULT_API_URL
        return cls(
            bot_token=token,
            signing_secret=secret,
            app_token=env.get("SLACK_APP_TOKEN") or None,
            api_url=api_url if api_url.endswith("/") else api_url + "/",
            http_timeout=env_number(env, "SLACK_HTTP_TIMEOUT_SECONDS", 30),
            updates_per_minute=env_number(env, "SLACK_UPDATES_PER_MINUTE", 45),
            stream_appends_per_minute=env_number(env, "SLACK_STREAM_APPENDS_PER_MINUTE", 100),
            prompts=prompts_from_env(env),
        )

    def __repr__(self) -> str:  # never print secrets
        return f"SlackSettings(api_url={self.api_url!r}, socket_mode={self.app_token is not None})"


class _ConnectRetry(AsyncConnectionErrorRetryHandler):
    """Retries only when the connection could not be made, so the request was never sent.

    (The default also retries resets and disconnects, which may follow a delivered chat.postMessage
    and would post it twice.)"""

    def __init__(self) -> None:
        super().__init__(max_retry_count=2, error_types=[ClientConnectorError])


def make_client(settings: SlackSettings) -> AsyncWebClient:
    """The Web API client: 429s wait ``Retry-After`` and retry; unsent requests retry."""
    client = AsyncWebClient(token=settings.bot_token, base_url=settings.api_url, timeout=int(settings.http_timeout))
    client.retry_handlers.clear()
    client.retry_handlers.extend([AsyncRateLimitErrorRetryHandler(max_retry_count=3), _ConnectRetry()])
    return client


class SlackAdapter:
    """The bolt app, its client and the listeners that translate and hand over to the engine."""

    def __init__(self, engine: Engine, settings: SlackSettings, client: AsyncWebClient | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.client = client or make_client(settings)
        # The origin (scheme, host, port) of a custom API URL: the one other place the token may go.
        api_host = None if settings.api_url == DEFAULT_API_URL else re.sub(r"^(\w+://[^/]*).*$", r"\1",
                                                                          settings.api_url)
        self.ctx = SlackContext(
            client=self.client, token=settings.bot_token, api_host=api_host,
            update_budget=RateBudget(settings.updates_per_minute, burst=10),
            stream_budget=RateBudget(settings.stream_appends_per_minute, burst=30),
        )
        #: The surface type handed to the engine (a benchmark swaps in a naive one).
        self.surface_class: type[SlackSurface] = SlackSurface
        #: Web API calls share one keep-alive session (a benchmark turns it off to measure a new
        #: connection per call, slack-sdk's default).
        self.pooled = True
        self.bot_user_id: str | None = None
        self.bot_id: str | None = None
        self.background = BackgroundWork()
        self.verifier = SignatureVerifier(settings.signing_secret)
        self._identity: asyncio.Future[None] | None = None
        self.team_id: str | None = None
        # Bolt's own token authorization makes an auth.test per request until one has answered (a
        # burst on a cold start made one per event); ``authorize`` hands it our one shared identity.
        # Its client has no token of its own: listeners use ``self.client``.
        self.bolt = AsyncApp(signing_secret=settings.signing_secret,
                             client=AsyncWebClient(base_url=settings.api_url, timeout=int(settings.http_timeout)),
                             authorize=self._authorizer(), ignoring_self_events_enabled=True,
                             # Turns shared by replicas: an event is acknowledged only once it is
                             # claimed and queued, so a replica killed in between loses nothing
                             # (Slack delivers it again, to any replica).
                             process_before_response=engine.intake is not None)
        self.bolt.event("app_mention")(self._on_event)
        self.bolt.event("message")(self._on_event)
        self.bolt.event("agent_session_stopped")(self._on_session_stopped)
        self.bolt.event("assistant_thread_started")(self._on_thread_started)
        self.bolt.event("app_home_opened")(self._on_home_opened)
        self.bolt.action(re.compile("^" + re.escape(ACTION_PREFIX)))(self._on_action)
        self.bolt.function(workflow_step.CALLBACK_ID)(workflow_step.WorkflowStep(self).on_function)
        if engine.intake is not None:  # turns shared by replicas: any of them may run this one
            engine.intake.register("slack", lambda m, args: self.surface(
                m.thread, m.user, is_dm=bool(args.get("is_dm")), message_ts=args.get("message_ts"),
                user_team=args.get("user_team"), title=args.get("title")))

    async def start(self) -> None:
        """Learn who we are (``auth.test``): our user id to strip mentions and skip our own messages.

        Once known it is kept. Concurrent callers (a burst of events on a cold start) share one
        call; a failure reaches every waiter of that call and the next caller tries again.
        """
        if self.pooled and (self.client.session is None or self.client.session.closed):
            # Made here, inside the running loop, before the first call (every path calls start first).
            self.client.session = web_api_session(self.settings.http_timeout)
        if self.bot_user_id is not None:
            return
        if self._identity is None or self._identity.done():
            self._identity = asyncio.ensure_future(self._auth_test())
        await asyncio.shield(self._identity)

    async def _auth_test(self) -> None:
        resp = await self.client.auth_test()
        self.bot_user_id, self.bot_id, self.team_id = resp.get("user_id"), resp.get("bot_id"), resp.get("team_id")
        log.info("Slack bot user %s in team %s", self.bot_user_id, resp.get("team_id"))

    def _authorizer(self) -> Callable[..., Awaitable[AuthorizeResult]]:
        """Bolt's ``authorize`` function (a plain function: bolt passes arguments by their names)."""

        async def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
            await self.start()
            return AuthorizeResult(enterprise_id=enterprise_id, team_id=self.team_id or team_id,
                                   bot_token=self.settings.bot_token, bot_user_id=self.bot_user_id,
                                   bot_id=self.bot_id)

        return authorize

    async def connect(self, health: Health, socket_mode: Any = None, *, first_delay: float = 1.0,
                      max_delay: float = 60.0) -> None:
        """Run ``start`` (and connect Socket Mode) until it works, waiting ``first_delay`` seconds
        after a failure and doubling up to ``max_delay``; ``health`` says meanwhile why Slack is down."""
        delay = first_delay
        while True:
            try:
                await self.start()
                if socket_mode is not None:
                    await socket_mode.connect_async()
                    log.info("Slack Socket Mode connected")
            except Exception as exc:  # unreachable, refused token, a Slack outage: all retried
                health.report("slack", False, f"cannot reach Slack ({_reason(exc)}); retrying in {delay:g} s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_delay)
                continue
            try:  # before reporting healthy: a redelivery of a crashed turn's event must find it released
                await self.engine.end_interrupted(PLATFORM, self.resume)
            except Exception:
                log.exception("could not end the turns a restart interrupted")
            health.report("slack", True, f"bot user {self.bot_user_id}")
            return

    async def aclose(self) -> None:
        await self.background.aclose()
        await self.ctx.aclose()
        if self.client.session is not None:
            await self.client.session.close()

    def surface(self, thread: ThreadKey, user: str, is_dm: bool = False, message_ts: str | None = None,
                user_team: str | None = None, title: str | None = None) -> SlackSurface:
        surface = self.surface_class(self.ctx, thread, user, is_dm=is_dm, message_ts=message_ts)
        if user_team and user_team != thread.team:  # a Slack Connect user: streams go to their workspace
            surface.user_team = user_team
        surface.title = title
        return surface

    def resume(self, turn: TurnInFlight) -> SlackSurface:
        """The surface of a turn journalled before a restart (``SlackSurface.address``)."""
        return self.surface(turn.thread, turn.user, is_dm=bool(turn.address.get("dm")),
                            message_ts=turn.address.get("message_ts"))

    # ---- listeners (bolt acks events itself; actions ack first) ----------------------------------

    async def _on_event(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        if self.bot_user_id is None:
            await self.start()
        team = receiving_team(body, self.team_id)
        message = to_incoming(event, self.bot_user_id, team, self.bot_id)
        if message is None:
            return
        if any(f.file_id and not f.url for f in message.files):
            # Shared-channel files come without URLs: look them up now so the agent sees their names.
            message = replace(message, files=await with_file_info(self.ctx, message.files))
        # The first message of a thread names it (the agent session's, or the assistant thread's, title).
        title = thread_title(message.text) if message.thread.thread == event.get("ts") else None
        is_dm = event.get("channel_type") == "im"
        if self.engine.intake is not None:
            surface_args = {"is_dm": is_dm, "message_ts": event.get("ts"), "user_team": event.get("user_team"),
                            "title": title}
            await self.engine.intake.submit(message, surface_args)  # before the acknowledgement: see ``bolt``
            return
        surface = self.surface(message.thread, message.user, is_dm=is_dm, message_ts=event.get("ts"),
                               user_team=event.get("user_team"), title=title)
        self.background.spawn(self.engine.submit(message, surface), f"Slack message {message.event_id}")

    async def _on_thread_started(self, event: dict[str, Any]) -> None:
        """A person opened a new DM / assistant thread with the bot: offer the suggested prompts."""
        thread = event.get("assistant_thread") or {}
        channel, thread_ts = thread.get("channel_id"), thread.get("thread_ts")
        if not channel or not thread_ts:
            return
        prompts = [{"title": p.title, "message": p.message} for p in self.settings.prompts]
        self.background.spawn(self.client.assistant_threads_setSuggestedPrompts(
            channel_id=channel, thread_ts=thread_ts, title="Try one of these, or attach a file:", prompts=prompts),
            "Slack suggested prompts")

    async def _on_home_opened(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        """A person opened the bot's Messages tab: the first time ever (per person, across restarts),
        a short welcome with the suggested prompts in that DM; later openings change nothing."""
        user, channel = event.get("user"), event.get("channel")
        if event.get("tab") != "messages" or not user or not channel:
            return
        team = body.get("team_id") or self.team_id or ""
        if not await self.engine.claim_event(f"slack:welcome:{team}:{user}"):
            return
        prompts = [Prompt(escape(p.title), escape(p.message)) for p in self.settings.prompts]
        self.background.spawn(self.client.chat_postMessage(channel=channel, text=welcome_text(prompts)),
                              "Slack welcome")

    async def _on_session_stopped(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        """Slack's own Stop button of an agent session: the same Stop intent as ours, with the same
        checks (the platform vouches for who pressed it and where). With nothing running the
        session is moved out of ``processing`` anyway, so Slack's button does not linger."""
        if self.bot_user_id is None:
            await self.start()
        stopped = session_stopped(event, body.get("team_id") or self.team_id or "")
        if stopped is None:
            return
        thread, user = stopped
        surface = self.surface(thread, user, is_dm=thread.channel.startswith("D"))
        self.background.spawn(self._stop(thread, user, surface), "Slack agent session stopped")

    async def _stop(self, thread: ThreadKey, user: str, surface: SlackSurface) -> None:
        was_running = self.engine.running(thread)
        await self.engine.request(Stop(), thread, user, surface)
        if not was_running:
            await best_effort(surface.set_status(None))

    async def _on_action(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        action = to_action(body, receiving_team(body, self.team_id))
        if action is None:
            return
        self.background.spawn(self._act(action, body), f"Slack action {action.kind}")

    async def _act(self, action: ActionInvoked, body: dict[str, Any]) -> None:
        is_dm = (body.get("channel") or {}).get("id", "").startswith("D")
        user_team = (body.get("user") or {}).get("team_id")
        await self.engine.act(action, self.surface(action.thread, action.user, is_dm=is_dm, user_team=user_team))

    # ---- HTTP ---------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        """POST ``/slack/events``: 503 while the engine takes no new work or Slack is unreachable
        (Slack retries), then the gate of ``verify.check_request``, then bolt."""
        if not self.engine.accepting:
            return web.Response(status=503, text="shutting down")
        try:
            body = await read_request(request)
        except web.HTTPRequestEntityTooLarge:
            log.warning("rejected a Slack request: body over the size limit (413)")
            return web.Response(status=413)
        checked = check_request(body, request.headers, self.verifier)
        if isinstance(checked, Rejection):
            log.warning("rejected a Slack request: %s (%d)", checked.reason, checked.status)
            return web.Response(status=checked.status)
        try:
            await self.start()
        except Exception as exc:
            log.warning("answering 503: cannot reach Slack (%s)", _reason(exc))
            return web.Response(status=503)
        bolt_request = AsyncBoltRequest(body=checked.text, query=request.query_string,
                                        headers=request.headers)  # type: ignore[arg-type]
        if self.engine.intake is None and is_event_callback(checked.text, request.content_type):
            # An event needs no answer but "received" (bolt would acknowledge it itself, after its
            # middleware and listener matching): answer now, so under load the acknowledgement does not
            # queue behind other work on the event loop; bolt then dispatches it in the background.
            # With turns shared by replicas bolt answers instead, once the listener has queued it.
            self.background.spawn(self.bolt.async_dispatch(bolt_request), "Slack event")
            return web.Response(status=200)
        return await to_aiohttp_response(await self.bolt.async_dispatch(bolt_request))


def is_event_callback(text: str, content_type: str) -> bool:
    """An Events API delivery (not a URL check, an interaction or a slash command, whose answers matter)."""
    if content_type != "application/json" or '"event_callback"' not in text:
        return False
    try:
        return bool(json.loads(text).get("type") == "event_callback")
    except (ValueError, AttributeError):
        return False


def thread_title(text: str, limit: int = 60) -> str | None:
    """A thread's title from its first message: the first line, cut at a word near ``limit``."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if len(line) <= limit:
        return line or None
    return line[:limit].rsplit(" ", 1)[0].rstrip(" ,.;:") + "…"


def _reason(exc: BaseException) -> str:
    """A short cause for the log and ``/healthz`` (a connection error's text, a Slack error code)."""
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


async def mount(app: web.Application, engine: Engine, settings: Settings, env: Mapping[str, str]) -> bool:
    """Add Slack to ``app`` if ``SLACK_BOT_TOKEN`` and ``SLACK_SIGNING_SECRET`` are set.

    HTTP mode serves POST ``/slack/events`` (events and interactivity). With ``SLACK_APP_TOKEN``
    Socket Mode is started on app startup instead and no route is added.
    """
    slack = SlackSettings.from_env(env)
    if slack is None:
        return False
    adapter = SlackAdapter(engine, slack)
    app[ADAPTER_KEY] = adapter
    health = health_of(app)
    socket: Any = None
    connecting: asyncio.Task[None] | None = None

    async def on_startup(_: web.Application) -> None:
        # Never fail the server's start-up: Slack being down must not take Teams (or /healthz) with it.
        nonlocal socket, connecting
        if slack.app_token:
            from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

            socket = AsyncSocketModeHandler(adapter.bolt, slack.app_token, web_client=adapter.client)
        health.report("slack", False, "connecting")
        connecting = asyncio.create_task(adapter.connect(health, socket), name="slack-connect")

    async def on_cleanup(_: web.Application) -> None:
        if connecting is not None:
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)
        if socket is not None:
            await socket.close_async()
        await adapter.aclose()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    if not slack.app_token:
        app.router.add_post(PATH, adapter.handle)
    return True
