"""``SlackTransport``: one thread's live turn message through Slack's Web API.

Streams with ``chat.startStream / appendStream / stopStream`` (far more rate headroom than
``chat.update``, ~50/min per workspace), edits with ``chat.update``; both paced by the workspace's
``RateBudget``s. What to show and when to switch is ``bot.live_turn``'s business.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from slack_sdk.errors import SlackApiError

from adapters.slack.budget import RateBudget
from adapters.slack.context import (
    MESSAGE_GONE,
    STEP_CHUNKS_UNAVAILABLE,
    STREAMING_UNAVAILABLE,
    SlackContext,
    slack_error,
)
from bot.messages import ThreadKey
from bot.reply import Reply, Step
from bot.transport import Limits, MessageGone, StreamRefused, TransportError
from renderers.markdown import fit, utf8_len
from renderers.slack import MARKDOWN_BLOCK, STREAM_BYTES, SlackMessage, button_blocks, stream_text, turn_messages
from renderers.slack_steps import DISPLAY_MODE, step_chunks, text_beside_steps

log = logging.getLogger(__name__)

@dataclass
class SlackTransport:
    """``bot.transport.LiveTransport`` for one thread. Live calls wait for the workspace's budget in
    ``pace``; others (the end of a turn, a click's result) spend it at once, even into debt."""

    ctx: SlackContext
    thread: ThreadKey
    user: str
    is_dm: bool = False
    interval: float = 1.0
    name: str = "Slack"
    _ts: str = ""  # the open stream
    _controls: bool = False  # the stream carries blocks (a Stop button) that its end must replace
    _paid: Counter[str] = field(default_factory=Counter)  # calls reserved by ``pace``
    _sent: dict[str, Step] = field(default_factory=dict)  # steps the open stream shows, as last sent
    #: The streamed-to user's workspace when it is not the thread's (a Slack Connect channel).
    recipient_team: str | None = None

    def _budget(self, kind: str) -> RateBudget:
        return self.ctx.stream_budget if kind == "append" else self.ctx.update_budget

    async def pace(self, kind: Literal["append", "edit"]) -> None:
        await self._budget(kind).acquire()
        self._paid[kind] += 1

    def _spend(self, kind: str) -> None:
        if self._paid[kind]:
            self._paid[kind] -= 1
        else:
            self._budget(kind).take()

    @property
    def stream_id(self) -> str | None:
        return self._ts or None

    @property
    def limits(self) -> Limits:
        return Limits(message_bytes=MARKDOWN_BLOCK, edit_interval=self.interval, can_stream=self.ctx.streaming,
                      stream_bytes=STREAM_BYTES, append_interval=self.interval,
                      native_stop=self.ctx.agent_sessions is True, stream_steps=self._tasks)

    render = staticmethod(turn_messages)

    @property
    def _tasks(self) -> bool:
        """Streams show steps as task chunks (until this workspace refused them)."""
        return self.ctx.streaming and self.ctx.step_chunks

    def stream_text(self, reply: Reply, *, final: bool) -> str:
        """The stream's text: beside the steps when they show as tasks, else with them (as edits show)."""
        return text_beside_steps(reply, final=final) if self._tasks else stream_text(reply, final=final)

    def _steps(self, reply: Reply) -> list[dict[str, Any]]:
        """Task chunks for what changed in ``reply``'s steps since the last call (recorded as sent)."""
        if not self._tasks:
            return []
        chunks = step_chunks(reply.steps, self._sent)
        self._sent = {step.id: step for step in reply.steps}
        return chunks

    def _refused(self, exc: SlackApiError) -> StreamRefused:
        if self._tasks and slack_error(exc) in STEP_CHUNKS_UNAVAILABLE:
            log.info("Slack refused task chunks (%s); streaming steps as text from now on", slack_error(exc))
            self.ctx.step_chunks = False
        elif slack_error(exc) in STREAMING_UNAVAILABLE:
            log.info("Slack streaming unavailable (%s); using chat.update from now on", slack_error(exc))
            self.ctx.streaming = False
        return StreamRefused(slack_error(exc), message_id=self._ts or None)

    async def open_stream(self, reply: Reply, text: str) -> str:
        tasks = self._tasks
        try:
            return await self._start(reply, text)
        except StreamRefused:
            if not tasks or self._tasks:
                raise
        # The workspace refused steps as tasks: the same stream as text, as before they existed.
        return await self._start(reply, self.stream_text(reply, final=False))

    async def _start(self, reply: Reply, text: str) -> str:
        args: dict[str, Any] = {"channel": self.thread.channel, "thread_ts": self.thread.thread}
        text = fit(text, MARKDOWN_BLOCK, utf8_len)
        self._sent = {}
        steps = self._steps(reply)
        if self._tasks:
            args["task_display_mode"] = DISPLAY_MODE
        if buttons := button_blocks(reply):
            # A running turn's own controls (our Stop button) travel as a blocks chunk under the
            # text; the stop of the stream replaces them with the end's buttons.
            self._controls = True
        if buttons or steps:
            args["chunks"] = [*steps, *([{"type": "markdown_text", "text": text}] if text else ()),
                              *([{"type": "blocks", "blocks": buttons}] if buttons else ())]
        elif text:
            args["markdown_text"] = text
        if not self.is_dm:
            args |= {"recipient_team_id": self.recipient_team or self.thread.team, "recipient_user_id": self.user}
        try:
            self._ts = str((await self.ctx.client.chat_startStream(**args))["ts"])
        except SlackApiError as exc:
            raise self._refused(exc) from exc
        return text

    async def append(self, reply: Reply, text: str, delta: str) -> None:
        steps = self._steps(reply)
        try:
            while delta or steps:
                piece = fit(delta, MARKDOWN_BLOCK, utf8_len)
                delta = delta[len(piece):]
                self._spend("append")
                if steps:  # what changed in the steps goes first, with the first piece of text
                    chunks = [*steps, *([{"type": "markdown_text", "text": piece}] if piece else ())]
                    steps = []
                    await self.ctx.client.chat_appendStream(channel=self.thread.channel, ts=self._ts, chunks=chunks)
                else:
                    await self.ctx.client.chat_appendStream(channel=self.thread.channel, ts=self._ts,
                                                            markdown_text=piece)
        except SlackApiError as exc:
            error = self._refused(exc)
            await self.close_stream(None, "")  # best effort: it may already be over
            raise error from exc

    async def close_stream(self, reply: Reply | None, delta: str) -> str:
        ts = self._ts
        args: dict[str, Any] = {"channel": self.thread.channel, "ts": ts}
        if utf8_len(delta) > MARKDOWN_BLOCK:  # more than one call takes: append it, then stop
            await self.append(reply or Reply(()), "", delta)
            delta = ""
        # The steps' last states (complete / error) travel with the stop, before the last text.
        steps = self._steps(reply) if reply is not None else []
        if steps:
            args["chunks"] = [*steps, *([{"type": "markdown_text", "text": delta}] if delta else ())]
        elif delta:
            args["markdown_text"] = delta
        if reply is not None and ((blocks := button_blocks(reply)) or self._controls):
            args["blocks"] = blocks  # an empty list takes a running turn's Stop button away
        try:
            await self.ctx.client.chat_stopStream(**args)
        except SlackApiError as exc:
            if reply is not None:
                raise self._refused(exc) from exc
            log.debug("stopStream after a failed stream: %s", slack_error(exc))
        return ts

    async def post(self, message: SlackMessage) -> str:
        try:
            resp = await self.ctx.client.chat_postMessage(channel=self.thread.channel, thread_ts=self.thread.thread,
                                                          blocks=list(message.blocks), text=message.text)
        except SlackApiError as exc:
            raise TransportError(slack_error(exc)) from exc
        return str(resp["ts"])

    async def edit(self, message_id: str, message: SlackMessage) -> None:
        self._spend("edit")
        try:
            await self.ctx.client.chat_update(channel=self.thread.channel, ts=message_id, blocks=list(message.blocks),
                                              text=message.text)
        except SlackApiError as exc:
            error = slack_error(exc)
            raise (MessageGone if error in MESSAGE_GONE else TransportError)(error) from exc
