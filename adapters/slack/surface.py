"""``SlackSurface``: the engine's reply handle for one Slack thread.

Web API calls go through one ``AsyncWebClient`` (rate-limit and safe connection retries are
configured in ``app.py``). Upload retries: a file is only shared by ``files.completeUploadExternal``;
when an upload times out we list the channel's files since the upload began and retry only if
ours is not there (a timed-out completion may well have succeeded). The bot token is only sent to
Slack's own hosts or to the host of ``SLACK_API_URL``; it is never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
from slack_sdk.errors import SlackApiError

from adapters.http import read_capped
from adapters.slack.context import SlackContext, slack_error
from adapters.slack.transport import SlackTransport
from bot.live_turn import redraw
from bot.messages import MessageRef, RemoteFile, ThreadKey
from bot.presenter import OUTPUT_CHARS
from bot.reply import Reply
from bot.surface import SurfaceError
from bot.transport import TransportError
from bot.workspace import human_size
from renderers.slack import render

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

    @property
    def channel(self) -> str:
        return self.thread.channel

    @property
    def thread_ts(self) -> str:
        return self.thread.thread

    @property
    def team(self) -> str:
        return self.thread.team

    # ---- messages ------------------------------------------------------------------------------

    def address(self) -> dict[str, Any]:
        """``bot.journal.Addressable``: with the thread key and user, all ``SlackAdapter.resume`` needs."""
        return {"dm": self.is_dm, "message_ts": self.message_ts}

    def live_transport(self) -> SlackTransport:
        return SlackTransport(self.ctx, self.thread, self.user, self.is_dm, self.live_interval)

    async def post(self, reply: Reply) -> MessageRef | None:
        transport = self.live_transport()
        try:
            posted = [await transport.post(m) for m in render(reply)]
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
                # render: fresh block_ids every time.
                await redraw(self.live_transport(), shown, render(reply))
            except TransportError as exc:
                raise SurfaceError(f"Slack refused the update ({exc.code}).") from exc

        await self.ctx.clicks.redraws.run((ref.channel, ref.id), self.ctx.clicks.of(self.user).acquire, draw)

    async def notify(self, user: str, reply: Reply) -> None:
        m = render(reply)[0]
        try:
            await self.ctx.client.chat_postEphemeral(channel=self.channel, user=user, thread_ts=self.thread_ts,
                                                     blocks=list(m.blocks), text=m.text)
        except SlackApiError as exc:
            raise SurfaceError(f"Slack refused the private message ({slack_error(exc)}).") from exc

    async def set_status(self, text: str | None) -> None:
        # Two signs of work: the assistant status (only in assistant threads) and, everywhere, a 👀
        # reaction on the user's message, removed again when the turn ends.
        if self.message_ts is not None:
            react = self.ctx.client.reactions_add if text else self.ctx.client.reactions_remove
            try:
                await react(channel=self.channel, timestamp=self.message_ts, name=WORKING_REACTION)
            except SlackApiError as exc:  # already_reacted, no_reaction, missing scope: not worth a turn
                log.debug("reactions: %s", slack_error(exc))
        try:
            await self.ctx.client.assistant_threads_setStatus(channel_id=self.channel, thread_ts=self.thread_ts,
                                                              status=text or "")
        except SlackApiError as exc:
            # Not an assistant thread, or the feature is off: the reaction and the live message show work.
            log.debug("assistant.threads.setStatus: %s", slack_error(exc))

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

