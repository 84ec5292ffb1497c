"""Live turn messages: Teams streaming in personal chats, one edited message elsewhere."""

from __future__ import annotations

import logging
import time

from botbuilder.schema import Activity, ActivityTypes, ConversationReference

from adapters.teams.entities import StreamInfo
from adapters.teams.sender import Sender
from bot.messages import MessageRef
from bot.reply import Reply, Status
from renderers.teams import INFORMATIVE_LIMIT, MESSAGE_LIMIT, message_text, split_message, status_line

log = logging.getLogger(__name__)

#: Teams ends a stream after 2 minutes; close ours a little before and continue by editing.
STREAM_LIMIT = 110.0


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
    stream nears Teams' 2-minute cap, the stream is closed with a final message and the rest of
    the turn edits that message (``EditedLive``).
    """

    #: Seconds a stream may run before it is closed (Teams' cap is 120).
    limit = STREAM_LIMIT

    def __init__(self, sender: Sender, reference: ConversationReference) -> None:
        self._sender = sender
        self._reference = reference
        self._started = time.monotonic()
        self._sequence = 0
        self.stream_id: str | None = None
        self._streamed = ""
        self._edited: EditedLive | None = None

    @classmethod
    async def start(cls, sender: Sender, reference: ConversationReference, reply: Reply) -> StreamedLive:
        live = cls(sender, reference)
        await live._informative(reply)
        return live

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

    async def update(self, reply: Reply) -> None:
        if self._edited is not None:
            await self._edited.update(reply)
            return
        body = message_text(reply, include_status=False)
        overdue = time.monotonic() - self._started > self.limit
        if overdue or not body.startswith(self._streamed) or len(body.encode()) > MESSAGE_LIMIT:
            log.info("closing the Teams stream and continuing by editing (overdue=%s)", overdue)
            message_id = await self._close(reply)
            self._edited = EditedLive(self._sender, self._reference, message_id,
                                      split_message(message_text(reply))[0])
            return
        if not body:
            if not self._streamed:
                await self._informative(reply)
            return
        if body != self._streamed:
            await self._typing(body, "streaming")
            self._streamed = body

    async def finish(self, reply: Reply) -> MessageRef | None:
        if self._edited is not None:
            return await self._edited.finish(reply)
        message_id = await self._close(reply)
        for piece in split_message(message_text(reply))[1:]:
            await self._sender.send(self._reference, text_activity(piece))
        return MessageRef(self._reference.conversation.id, message_id)
