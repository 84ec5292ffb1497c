"""``SlackSurface``: the engine's reply handle for one Slack thread.

Web API calls go through one ``AsyncWebClient`` (rate-limit and safe connection retries are
configured in ``wiring.py``). Upload retries: a file is only shared by ``files.completeUploadExternal``;
when an upload times out we list the channel's files since the upload began and retry only if
ours is not there (a timed-out completion may well have succeeded). The bot token is only sent to
Slack's own hosts or to the host of ``SLACK_API_URL``; it is never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
from slack_sdk.errors import SlackApiError

from adapters.http import read_capped
from adapters.slack.context import INVALID_BLOCKS, NO_AGENT_SESSIONS, SlackContext, slack_error
from adapters.slack.inbound import UNREADABLE, remote_file
from adapters.slack.transport import SlackTransport
from bot.live_turn import redraw
from bot.messages import MessageRef, RemoteFile, ThreadKey
from bot.presenter import OUTPUT_CHARS
from bot.reply import Chart, Reply, Table
from bot.surface import Refused, SurfaceError
from bot.transport import TransportError
from bot.workspace import human_size
from renderers.slack import TABLE_STYLES, SlackMessage, render

log = logging.getLogger(__name__)

#: Bot scopes the calls in this module need (checked against the manifest by a test).
SCOPES = ("chat:write", "files:write", "files:read", "assistant:write", "reactions:write")
NO_ACCESS = "I can't access that file: add the bot to the channel, or reinstall the app with files:read."
NOT_SLACK = "That file link does not point to Slack, so I did not fetch it."
MAX_REDIRECTS = 3


#: Reaction that marks a message the bot is working on.
WORKING_REACTION = "eyes"


@dataclass
class SlackSurface:
    """``bot.surface.Surface`` for one thread. ``user`` is who the turn is for (stream recipient)."""

    ctx: SlackContext
    thread: ThreadKey
    user: str
    is_dm: bool = False
    #: The user's message this surface answers (it gets the 👀 reaction while the turn runs).
    message_ts: str | None = None
    #: Least seconds between two edits (or stream appends) of a turn message.
    live_interval: float = 1.0
    #: Characters of code output one turn message shows (the presenter's default).
    output_chars: int = OUTPUT_CHARS
    #: The workspace of ``user`` when it is not the thread's (Slack Connect): streams are addressed to it.
    user_team: str | None = None
    #: The thread's title (its first message, shortened), set with the first status of a new thread.
    title: str | None = None
    #: Notices are ephemeral: only their user sees them.
    private_notices: bool = True

    @property
    def channel(self) -> str:
        return self.thread.channel

    @property
    def thread_ts(self) -> str:
        return self.thread.thread

    @property
    def team(self) -> str:
        return self.thread.team

    @property
    def native_charts(self) -> bool:
        """Small charts go as Slack's ``data_visualization`` until this workspace refuses one."""
        return self.ctx.native_charts

    # ---- messages ------------------------------------------------------------------------------

    def address(self) -> dict[str, Any]:
        """``bot.journal.Addressable``: with the thread key and user, all ``SlackAdapter.resume`` needs."""
        return {"dm": self.is_dm, "message_ts": self.message_ts}

    def live_transport(self) -> SlackTransport:
        return SlackTransport(self.ctx, self.thread, self.user, self.is_dm, self.live_interval,
                              recipient_team=self.user_team)

    async def post(self, reply: Reply) -> MessageRef | None:
        transport = self.live_transport()
        posted: list[str] = []
        try:
            # A refused table style is refused on the first message: nothing is posted twice.
            await self._with_tables(reply, lambda messages: self._post_all(transport, messages, posted))
        except TransportError as exc:
            raise SurfaceError(f"Slack refused the message ({exc.code}).") from exc
        return MessageRef(self.channel, posted[0])

    async def update(self, ref: MessageRef, reply: Reply) -> None:
        """Redraw a posted message; one that was deleted meanwhile is posted again, so a click
        always shows its result. Clicks are paced by the clicking user's own budget, never behind
        live edits, and coalesced per message: a redraw superseded by a newer click is skipped."""

        async def draw() -> None:
            shown = [ref.id]
            try:
                # render: fresh block_ids every time; native tables step down on invalid_blocks.
                await self._with_tables(reply, lambda messages: redraw(self.live_transport(), shown, messages))
            except TransportError as exc:
                raise SurfaceError(f"Slack refused the update ({exc.code}).") from exc

        await self.ctx.clicks.redraws.run((ref.channel, ref.id), self.ctx.clicks.of(self.user).acquire, draw)

    @staticmethod
    async def _post_all(transport: SlackTransport, messages: list[SlackMessage], posted: list[str]) -> None:
        for m in messages:
            posted.append(await transport.post(m))

    async def _with_tables(self, reply: Reply, send: Callable[[list[SlackMessage]], Awaitable[None]]) -> None:
        """Send ``reply`` with tables in the workspace's table style; on ``invalid_blocks`` step down
        (``data_table`` -> ``table`` -> fixed-width text) for good and send again."""
        has_table = any(isinstance(b, Table) for b in reply.blocks)
        while True:
            style = self.ctx.table_style if has_table else "table"
            try:
                await send(render(reply, tables=style))
                return
            except TransportError as exc:
                if exc.code in INVALID_BLOCKS and any(isinstance(b, Chart) for b in reply.blocks):
                    # Only charts have a plainer form elsewhere (the PNG the caller draws instead).
                    log.info("Slack refused a data_visualization chart (%s); charts are PNGs from now on", exc.code)
                    self.ctx.native_charts = False
                    raise Refused("Slack does not show charts as blocks here.") from exc
                if not has_table or exc.code not in INVALID_BLOCKS or style == TABLE_STYLES[-1]:
                    raise
                lower = TABLE_STYLES[TABLE_STYLES.index(style) + 1]
                log.info("Slack refused %s blocks (%s); drawing tables as %s from now on", style, exc.code, lower)
                self.ctx.table_style = lower

    async def notify(self, user: str, reply: Reply) -> None:
        m = render(reply)[0]
        try:
            await self.ctx.client.chat_postEphemeral(channel=self.channel, user=user, thread_ts=self.thread_ts,
                                                     blocks=list(m.blocks), text=m.text)
        except SlackApiError as exc:
            raise SurfaceError(f"Slack refused the private message ({slack_error(exc)}).") from exc

    async def set_status(self, text: str | None) -> None:
        # Signs of work: a 👀 reaction on the user's message, removed again when the turn ends;
        # and the thread's status: an agent session (``processing`` shows Slack's own Stop button;
        # anything else hides it) or, where the app has no sessions, the assistant status.
        if self.message_ts is not None:
            react = self.ctx.client.reactions_add if text else self.ctx.client.reactions_remove
            try:
                await react(channel=self.channel, timestamp=self.message_ts, name=WORKING_REACTION)
            except SlackApiError as exc:  # already_reacted, no_reaction, missing scope: not worth a turn
                log.debug("reactions: %s", slack_error(exc))
        if await self._session_status("processing" if text else "active"):
            return
        try:
            await self.ctx.client.assistant_threads_setStatus(channel_id=self.channel, thread_ts=self.thread_ts,
                                                              status=text or "")
            if text and self.title:
                await self.ctx.client.assistant_threads_setTitle(channel_id=self.channel, thread_ts=self.thread_ts,
                                                                 title=self.title)
        except SlackApiError as exc:
            # Not an assistant thread, or the feature is off: the reaction and the live message show work.
            log.debug("assistant.threads: %s", slack_error(exc))

    async def _session_status(self, status: str) -> bool:
        """Set the thread's agent session status; False (and sessions off for good) when this app
        may not have sessions. Other refusals are logged: the turn goes on either way."""
        if self.ctx.agent_sessions is None:
            async with self.ctx.session_probe:
                if self.ctx.agent_sessions is None:
                    return await self._set_session_status(status)
        if not self.ctx.agent_sessions:
            return False
        return await self._set_session_status(status)

    async def _set_session_status(self, status: str) -> bool:
        args: dict[str, Any] = {"channel_id": self.channel, "thread_ts": self.thread_ts, "status": status}
        if status == "processing" and self.title:
            args["title"] = self.title
        if status == "processing":
            args["initiator_user_id"] = self.user
        try:
            resp = await self.ctx.client.agents_sessions_setStatus(**args)
            self.ctx.agent_sessions = True
        except SlackApiError as exc:
            if slack_error(exc) in NO_AGENT_SESSIONS:
                log.info("no agent sessions for this app (%s): assistant status and a Stop button instead",
                         slack_error(exc))
                self.ctx.agent_sessions = False
                return False
            log.warning("agents.sessions.setStatus: %s", slack_error(exc))
            return True
        if resp.get("warning"):  # e.g. missing_agent_session_stopped_event_subscription: Stop would do nothing
            log.warning("agents.sessions.setStatus warns: %s", resp.get("warning"))
        return True

    # ---- files ---------------------------------------------------------------------------------

    async def upload(self, path: Path, *, name: str, title: str | None = None) -> None:
        size = (await asyncio.to_thread(path.stat)).st_size
        started = time.time()
        for attempt in (1, 2):
            try:
                await self._upload_once(path, size, name, title or name)
                return
            except TimeoutError as exc:
                shared = await self._already_shared(name, size, started)
                if shared:
                    log.info("upload timed out but the file is in the channel; not retrying")
                    return
                if shared is None:  # cannot tell: a retry might post it twice
                    raise SurfaceError("Slack did not confirm the upload in time; it may still appear. "
                                       "If it does not, use the Files button to post it.") from exc
                if attempt == 2:
                    raise SurfaceError("Slack did not answer in time while uploading; try again later.") from exc
                log.info("upload timed out before it was shared; retrying once")
            except SlackApiError as exc:
                raise SurfaceError(f"Slack refused the upload ({slack_error(exc)}).") from exc
            except aiohttp.ClientError as exc:
                raise SurfaceError("the upload to Slack failed; try again later.") from exc

    async def _upload_once(self, path: Path, size: int, name: str, title: str) -> None:
        """``files_upload_v2``'s three steps, with the file streamed from disk: slack-sdk reads the
        whole file into memory first (a 1 GB file costs 1 GB), aiohttp sends an open file in 64 KiB
        reads. The upload URL is Slack's file host: the bot token is never sent there."""
        issued = await self.ctx.client.files_getUploadURLExternal(filename=name, length=size)
        upload_url, file_id = str(issued["upload_url"]), str(issued["file_id"])
        with path.open("rb") as body:  # aiohttp reads it in bounded chunks, off the event loop
            async with self.ctx.http().post(upload_url, data=body,
                                            headers={"Content-Type": "application/octet-stream"}) as resp:
                await resp.read()
                if resp.status != 200:
                    raise SurfaceError(f"Slack's file host answered HTTP {resp.status} to the upload.")
        await self.ctx.client.files_completeUploadExternal(files=[{"id": file_id, "title": title}],
                                                           channel_id=self.channel, thread_ts=self.thread_ts)

    async def _already_shared(self, name: str, size: int, since: float) -> bool | None:
        """Whether our file is in the channel since ``since``; ``None`` when Slack cannot tell us."""
        try:
            resp = await self.ctx.client.files_list(channel=self.channel, ts_from=str(int(since) - 1), count=100)
        except (SlackApiError, TimeoutError) as exc:
            log.warning("could not check for a timed-out upload: %s", exc)
            return None
        files: list[dict[str, Any]] = resp.get("files") or []
        return any(f.get("name") == name and f.get("size") == size for f in files)

    async def download(self, file: RemoteFile, limit: int) -> bytes:
        """The file's bytes. A file sent without URLs (``check_file_info``) is looked up with
        ``files.info`` first; a file Slack says the bot cannot read raises ``SurfaceError`` why."""
        if file.unreadable:
            raise SurfaceError(file.unreadable)
        if not file.url and file.file_id:
            file = await file_info(self.ctx, file.file_id)
        if file.size is not None and file.size > limit:
            raise SurfaceError(f"it is {human_size(file.size)}; the limit is {human_size(limit)}.")
        url = file.url
        for _ in range(MAX_REDIRECTS + 1):
            if not self.ctx.allowed_host(url):
                raise SurfaceError(NOT_SLACK)
            headers = {"Authorization": f"Bearer {self.ctx.token}"}
            async with self.ctx.http().get(url, headers=headers, allow_redirects=False) as resp:
                if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                    url = urljoin(url, resp.headers["Location"])
                    continue
                if resp.status != 200:
                    raise SurfaceError(f"Slack answered {resp.status} for that file.")
                if resp.content_type == "text/html":
                    raise SurfaceError(NO_ACCESS)
                return await read_capped(resp, limit)
        raise SurfaceError("Slack redirected that file too many times.")



async def file_info(ctx: SlackContext, file_id: str) -> RemoteFile:
    """The real file object of a file Slack sent as ``check_file_info`` (shared channels), from
    ``files.info``; ``SurfaceError`` with a short reason when Slack will not show it."""
    try:
        resp = await ctx.client.files_info(file=file_id)
    except SlackApiError as exc:
        error = slack_error(exc)
        raise SurfaceError(UNREADABLE.get(error) or f"Slack would not show it to me ({error}).") from exc
    found = remote_file(resp.get("file") or {"id": file_id})
    if found.unreadable or not found.url:
        raise SurfaceError(found.unreadable or "Slack sent no link to download it.")
    return found


async def with_file_info(ctx: SlackContext, files: tuple[RemoteFile, ...]) -> tuple[RemoteFile, ...]:
    """``files`` with every ``check_file_info`` entry looked up, so it carries its real name, size
    and URLs; one Slack will not show keeps its id as name and says why in ``unreadable``."""
    out = []
    for f in files:
        if f.url or not f.file_id or f.unreadable:
            out.append(f)
            continue
        try:
            out.append(await file_info(ctx, f.file_id))
        except SurfaceError as exc:
            out.append(replace(f, unreadable=str(exc)))
        except Exception as exc:  # Slack unreachable: the message still goes through, the file is named
            log.warning("files.info failed: %s", type(exc).__name__)
            out.append(replace(f, unreadable="I could not ask Slack for it; send it again."))
    return tuple(out)

