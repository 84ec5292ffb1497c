"""Live turn messages: Teams streaming in personal chats, one edited message elsewhere."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from botbuilder.schema import Activity, ActivityTypes, ConversationReference

from adapters.teams.entities import StreamInfo
from adapters.teams.sender import Sender, TeamsRefused
from bot.messages import MessageRef
from bot.reply import Reply, Status
from renderers.teams import INFORMATIVE_LIMIT, MESSAGE_LIMIT, message_text, split_message, status_line

log = logging.getLogger(__name__)

#: Teams ends a stream after 2 minutes; close ours a little before and continue by editing.
STREAM_LIMIT = 110.0
#: Teams' error code for a refused stream (Stop pressed, timed out, not allowed).
STREAM_REFUSED = "ContentStreamNotAllowed"


def text_activity(text: str, summary: str = "") -> Activity:
    return Activity(type=ActivityTypes.message, text=text, text_format="markdown", summary=summary or None)


class EditedLive:
    """One message updated in place (``update_activity``); the final state may add messages
    when the text is longer than one Teams message."""

    def __init__(self, sender: Sender, reference: ConversationReference, message_id: str, text: str) -> None:
        self._sender = sender
        self._reference = reference
        self.message_id = message_id
        self._shown = text

    @classmethod
    async def start(cls, sender: Sender, reference: ConversationReference, reply: Reply) -> EditedLive:
        text = split_message(message_text(reply))[0]
        return cls(sender, reference, await sender.send(reference, text_activity(text, reply.summary)), text)

    async def update(self, reply: Reply) -> None:
        pieces = split_message(message_text(reply))
        text = pieces[0] if len(pieces) == 1 else pieces[0] + "\n\n_… continued when the turn ends_"
        if text != self._shown:
            await self._sender.update(self._reference, self.message_id, text_activity(text, reply.summary))
            self._shown = text

    async def finish(self, reply: Reply) -> MessageRef | None:
        pieces = split_message(message_text(reply))
        if pieces[0] != self._shown:
            await self._sender.update(self._reference, self.message_id, text_activity(pieces[0], reply.summary))
            self._shown = pieces[0]
        for piece in pieces[1:]:
            await self._sender.send(self._reference, text_activity(piece))
        return MessageRef(self._reference.conversation.id, self.message_id)


class StreamedLive:
    """Teams streaming in a personal chat.

    The first update is ``informative`` (the status, shown at once); then ``streaming`` typing
    activities carry the full text so far, which must only grow, so the status line is left out
    until the final message. If the text would shrink or change, grow past one message, or the
    stream nears Teams' 2-minute cap (a timer closes it even when no update comes), the stream is
    closed with a final message and the rest of the turn edits that message (``EditedLive``).

    When Teams refuses the stream (``ContentStreamNotAllowed``: the person pressed Stop, the stream
    timed out, or streaming is not enabled; or any other refusal), the turn carries on in a new,
    ordinary message that is edited in place, so the answer always arrives. A Stop press also
    calls ``on_stop`` (the engine cancels the turn there).
    """

    #: Seconds a stream may run before it is closed (Teams' cap is 120).
    limit = STREAM_LIMIT

    def __init__(self, sender: Sender, reference: ConversationReference,
                 on_stop: Callable[[], object] | None = None) -> None:
        self._sender = sender
        self._reference = reference
        self._on_stop = on_stop
        self._started = time.monotonic()
        self._sequence = 0
        self.stream_id: str | None = None
        self._streamed = ""
        self._edited: EditedLive | None = None
        self._last: Reply = Reply(())
        # Updates, the cap timer and finish must not interleave their sends.
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, sender: Sender, reference: ConversationReference, reply: Reply,
                    on_stop: Callable[[], object] | None = None) -> StreamedLive:
        live = cls(sender, reference, on_stop)
        live._last = reply
        try:
            await live._informative(reply)
        except TeamsRefused as exc:
            await live._abandon(reply, exc)
        live._timer = asyncio.create_task(live._cap(), name="teams-stream-cap")
        return live

    async def _cap(self) -> None:
        await asyncio.sleep(max(0.0, self.limit - (time.monotonic() - self._started)))
        async with self._lock:
            if self._edited is None:
                log.info("closing the Teams stream at its time cap; continuing by editing")
                await self._switch(self._last)

    async def _typing(self, text: str, stream_type: str) -> str:
        self._sequence += 1
        entity = StreamInfo(stream_type=stream_type,  # type: ignore[arg-type]
                            stream_sequence=self._sequence, stream_id=self.stream_id)
        activity = Activity(type=ActivityTypes.typing, text=text, entities=[entity])
        return await self._sender.send(self._reference, activity)

    async def _informative(self, reply: Reply) -> None:
        status = next((b for b in reply.blocks if isinstance(b, Status)), None)
        text = (status_line(status) if status else "Working…")[:INFORMATIVE_LIMIT]
        sent_id = await self._typing(text, "informative")
        if self.stream_id is None:
            self.stream_id = sent_id

    async def _close(self, reply: Reply) -> str:
        """Send the final message of the stream with the full current state; its id."""
        text = split_message(message_text(reply))[0]
        activity = text_activity(text, reply.summary)
        activity.entities = [StreamInfo(stream_type="final", stream_id=self.stream_id)]
        sent = await self._sender.send(self._reference, activity)
        return sent or self.stream_id or ""

    async def _switch(self, reply: Reply) -> None:
        """Close the stream with ``reply`` and edit that message from now on."""
        try:
            message_id = await self._close(reply)
        except TeamsRefused as exc:
            await self._abandon(reply, exc)
            return
        self._edited = EditedLive(self._sender, self._reference, message_id, split_message(message_text(reply))[0])

    async def _abandon(self, reply: Reply, exc: TeamsRefused) -> None:
        """Teams refused the stream: carry on in a new ordinary message (edited in place)."""
        log.warning("Teams refused the stream (%s %s: %s); continuing in a plain message",
                    exc.status, exc.code, exc.detail)
        self._edited = await EditedLive.start(self._sender, self._reference, reply)
        if exc.code == STREAM_REFUSED and "cancel" in exc.detail.lower() and self._on_stop is not None:
            # Soon, not now: stopping the turn cancels the task that may be running this update.
            asyncio.get_running_loop().call_soon(self._on_stop)

    async def update(self, reply: Reply) -> None:
        async with self._lock:
            self._last = reply
            if self._edited is not None:
                await self._edited.update(reply)
                return
            body = message_text(reply, include_status=False)
            overdue = time.monotonic() - self._started > self.limit
            if overdue or not body.startswith(self._streamed) or len(body.encode()) > MESSAGE_LIMIT:
                log.info("closing the Teams stream and continuing by editing (overdue=%s)", overdue)
                await self._switch(reply)
                return
            try:
                if not body:
                    if not self._streamed:
                        await self._informative(reply)
                    return
                if body != self._streamed:
                    await self._typing(body, "streaming")
                    self._streamed = body
            except TeamsRefused as exc:
                await self._abandon(reply, exc)

    async def finish(self, reply: Reply) -> MessageRef | None:
        if self._timer is not None:
            self._timer.cancel()
        async with self._lock:
            self._last = reply
            if self._edited is None:
                try:
                    message_id = await self._close(reply)
                except TeamsRefused as exc:
                    await self._abandon(reply, exc)
                else:
                    for piece in split_message(message_text(reply))[1:]:
                        await self._sender.send(self._reference, text_activity(piece))
                    return MessageRef(self._reference.conversation.id, message_id)
            assert self._edited is not None
            return await self._edited.finish(reply)
