"""The live turn message: Slack native streaming first, ``chat.update`` of the same message after.

While the stream works, the turn (rendered as Markdown without the status, which Slack shows via
``assistant.threads.setStatus``) only grows, so each update appends the new tail. The last code /
output block is streamed without its closing fence, so growing output stays an append too. When
the text stops being an extension (output clipped at the top, an answer rewritten) or the stream
fails or expires, the message is stopped and from then on redrawn in full with ``chat.update``,
paced by the engine (one per ``live_interval``) and by a workspace-wide ``RateBudget``.

Text limits are kept in UTF-8 bytes (never fewer than Slack's characters). A turn message that was
deleted meanwhile is posted again; when Slack refuses the end of the turn outright, a short message
says so and how to get the results, so a turn never ends silently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.intents import ListFiles
from bot.messages import MessageRef
from bot.reply import Button, Buttons, CodeBlock, Image, Notice, Reply, Status
from renderers.markdown import fit, reply_to_markdown, utf8_len
from renderers.slack import MARKDOWN_BLOCK, SlackMessage, render

if TYPE_CHECKING:
    from adapters.slack.surface import SlackSurface

log = logging.getLogger(__name__)

#: Longest text (UTF-8 bytes) kept in one streamed message; longer turns are redrawn as block messages.
STREAM_MAX_BYTES = 3 * MARKDOWN_BLOCK
#: chat.update errors meaning the message is no longer there to update: post it again instead.
MESSAGE_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
#: Errors that mean streaming cannot work in this workspace / channel: stop trying it.
STREAMING_UNAVAILABLE = frozenset({
    "method_not_supported_for_channel_type", "not_allowed_token_type", "feature_not_enabled",
    "unknown_method", "not_allowed", "missing_scope", "channel_type_not_supported",
    "team_not_allowed", "invalid_arguments",
})


class RateBudget:
    """A token bucket: ``per_minute`` calls on average, bursts up to ``burst``.

    ``acquire`` waits for a token (live redraws: they coalesce while waiting); ``take`` spends one
    at once even into debt (a click must not wait behind live redraws; later redraws wait longer).
    """

    def __init__(self, per_minute: float, burst: float = 10.0) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self._tokens = burst
        self._at = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def take(self) -> None:
        self._refill()
        self._tokens -= 1

    async def acquire(self) -> None:
        async with self._lock:  # FIFO among waiters
            while True:
                self._refill()
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


def live_markdown(reply: Reply) -> str:
    """The streamed text: the turn as Markdown, without status, with a trailing code block open."""
    text = reply_to_markdown(reply)
    tail = next((b for b in reversed(reply.blocks) if not isinstance(b, Status | Buttons | Image)), None)
    if isinstance(tail, CodeBlock) and text.endswith("```") and not (tail.omitted and tail.role == "code"):
        # Drop the closing fence (and keep the newline before it) so the next output line appends.
        return text[: text.rfind("```")]
    return text


class SlackLive:
    """One turn's message. Created by ``SlackSurface.start_live``."""

    def __init__(self, surface: SlackSurface) -> None:
        self._s = surface
        self._stream_ts: str | None = None
        self._streamed = ""
        self._ts: list[str] = []  # block-mode messages: the first is the turn message
        self._last_redraw = 0.0

    # ---- stream ------------------------------------------------------------------------------

    async def begin(self, reply: Reply) -> None:
        s = self._s
        if s.ctx.streaming:
            text = fit(live_markdown(reply), MARKDOWN_BLOCK, utf8_len)
            args: dict[str, Any] = {"channel": s.channel, "thread_ts": s.thread_ts}
            if text:
                args["markdown_text"] = text
            if not s.is_dm:
                args |= {"recipient_team_id": s.team, "recipient_user_id": s.user}
            try:
                resp = await s.ctx.client.chat_startStream(**args)
                self._stream_ts, self._streamed = str(resp["ts"]), text
                return
            except SlackApiError as exc:
                self._stream_failed("start", exc)
        await self._redraw(reply, wait=False)

    def _stream_failed(self, step: str, exc: SlackApiError) -> None:
        error = slack_error(exc)
        if error in STREAMING_UNAVAILABLE:
            log.info("Slack streaming unavailable (%s); using chat.update from now on", error)
            self._s.ctx.streaming = False
        else:
            log.info("Slack stream %s failed (%s); falling back to chat.update", step, error)

    async def _append(self, text: str) -> bool:
        """Append the tail of ``text`` to the stream; False if the stream cannot take it."""
        if self._stream_ts is None:
            return False
        if not text.startswith(self._streamed) or utf8_len(text) > STREAM_MAX_BYTES:
            return False
        delta = text[len(self._streamed):]
        if not delta:
            return True
        s = self._s
        try:
            while delta:
                piece = fit(delta, MARKDOWN_BLOCK, utf8_len)
                delta = delta[len(piece):]
                await s.ctx.stream_budget.acquire()
                await s.ctx.client.chat_appendStream(channel=s.channel, ts=self._stream_ts, markdown_text=piece)
                self._streamed += piece
        except SlackApiError as exc:
            self._stream_failed("append", exc)
            return False
        return True

    async def _leave_stream(self) -> None:
        """Stop streaming for good; the message then takes ``chat.update`` redraws."""
        ts, self._stream_ts = self._stream_ts, None
        if ts is None:
            return
        self._ts = [ts]
        try:
            await self._s.ctx.client.chat_stopStream(channel=self._s.channel, ts=ts)
        except SlackApiError as exc:
            log.debug("stopStream after a failed stream: %s", slack_error(exc))

    # ---- LiveMessage -------------------------------------------------------------------------

    async def update(self, reply: Reply) -> None:
        if await self._append(live_markdown(reply)):
            return
        await self._leave_stream()
        await self._redraw(reply, wait=True)

    async def finish(self, reply: Reply) -> MessageRef | None:
        try:
            return await self._finish(reply)
        except SlackApiError as exc:
            error = slack_error(exc)
            log.warning("Slack refused the end of a turn (%s)", error)
            return await self._say_unshown(error)

    async def _say_unshown(self, error: str) -> MessageRef | None:
        """The turn ran but Slack would not show its end: say so, and where the results are."""
        s = self._s
        text = (f"This turn finished, but Slack would not show its result here ({error}). "
                "Its files are in the conversation's workspace: use the Files button or send `files`; "
                "or ask again for a shorter answer.")
        files = self._files_button()
        message = render(Reply((Notice(text, "error"), *((files,) if files else ())), "Could not show the result"))[0]
        try:
            resp = await s.ctx.client.chat_postMessage(channel=s.channel, thread_ts=s.thread_ts,
                                                       blocks=list(message.blocks), text=message.text)
        except SlackApiError as exc:
            log.warning("could not tell the thread either (%s)", slack_error(exc))
            return None
        return MessageRef(s.channel, str(resp["ts"]))

    async def _finish(self, reply: Reply) -> MessageRef | None:
        s = self._s
        files = self._files_button()
        if self._stream_ts is not None:
            text = reply_to_markdown(reply)
            if text.startswith(self._streamed) and utf8_len(text) <= STREAM_MAX_BYTES:
                delta = text[len(self._streamed):]
                args: dict[str, Any] = {"channel": s.channel, "ts": self._stream_ts}
                if delta:
                    args["markdown_text"] = delta
                if files:
                    args["blocks"] = list(render(Reply((files,)))[0].blocks)
                try:
                    if utf8_len(delta) <= MARKDOWN_BLOCK:
                        await s.ctx.client.chat_stopStream(**args)
                        return MessageRef(s.channel, self._stream_ts)
                except SlackApiError as exc:
                    self._stream_failed("stop", exc)
            await self._leave_stream()
        full = Reply((*reply.blocks, files), reply.summary) if files else reply
        await self._redraw(full, wait=True)
        return MessageRef(s.channel, self._ts[0]) if self._ts else None

    def _files_button(self) -> Buttons | None:
        token = self._s.ctx.files_token(self._s.thread) if self._s.ctx.files_token else None
        return Buttons((Button("Files", ListFiles(), token),)) if token else None

    async def _redraw(self, reply: Reply, *, wait: bool) -> None:
        """The whole reply, in as many messages as it needs: existing ones updated, new ones posted."""
        s = self._s
        messages = render(reply)
        if wait and self._ts:
            # At most one redraw per live_interval per message, the final one included.
            pause = s.live_interval - (time.monotonic() - self._last_redraw)
            if pause > 0:
                await asyncio.sleep(pause)
        self._last_redraw = time.monotonic()
        await redraw(s, self._ts, messages, wait=wait)


async def redraw(surface: SlackSurface, shown: list[str], messages: list[SlackMessage], *, wait: bool) -> None:
    """Show ``messages`` in the surface's thread in place of the messages ``shown`` (their ts).

    Message ``i`` replaces ``shown[i]``; one that is gone (deleted, too old to edit) is posted again,
    and messages past ``shown`` are posted. ``shown`` is updated in place as that happens, so a
    failure part-way still leaves it naming what is on screen. ``wait`` paces the updates with the
    workspace's update budget (live redraws); otherwise each spends its token at once (a click must
    not wait behind live redraws). Other Slack errors are raised.
    """
    s = surface
    for i, message in enumerate(messages):
        if i < len(shown):
            if wait:
                await s.ctx.update_budget.acquire()
            else:
                s.ctx.update_budget.take()
            try:
                await s.ctx.client.chat_update(channel=s.channel, ts=shown[i], blocks=list(message.blocks),
                                               text=message.text)
                continue
            except SlackApiError as exc:
                if slack_error(exc) not in MESSAGE_GONE:
                    raise
                log.info("a message is gone (%s); posting it again", slack_error(exc))
        resp = await s.ctx.client.chat_postMessage(channel=s.channel, thread_ts=s.thread_ts,
                                                   blocks=list(message.blocks), text=message.text)
        if i < len(shown):
            shown[i] = str(resp["ts"])
        else:
            shown.append(str(resp["ts"]))


def slack_error(exc: SlackApiError) -> str:
    """Slack's error code for a refused call (``unknown_error`` when the answer names none); never a token."""
    error = exc.response.get("error") if exc.response is not None else None
    return str(error or "unknown_error")
