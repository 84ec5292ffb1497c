"""``TeamsTransport``: one thread's live turn message through the Bot Connector (via ``Sender``).

Personal chats stream (an ``informative`` typing update, ``streaming`` updates carrying the whole
text so far, a ``final`` message); Teams caps a stream at two minutes, so ours is closed at 110 s.
Elsewhere one message is edited in place. ``bot.live_turn`` decides what to show and when.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from botbuilder.schema import Activity, ActivityTypes, Attachment, ConversationReference, SuggestedActions

from adapters.teams.entities import AIGeneratedLabel, StreamInfo, StreamType
from adapters.teams.sender import Sender, TeamsRefused
from bot.reply import Reply, Status
from bot.transport import Limits, MessageGone, StreamRefused, TransportError
from renderers.teams import (
    INFORMATIVE_LIMIT,
    MESSAGE_LIMIT,
    TeamsMessage,
    status_line,
    stream_text,
    turn_messages,
)

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
#: Seconds a stream runs before we close it and continue by editing (Teams' cap is 120).
STREAM_LIFETIME = 110.0
#: Teams' error code for a refused stream (Stop pressed, timed out, not allowed).
STREAM_REFUSED = "ContentStreamNotAllowed"


def text_activity(text: str, summary: str = "") -> Activity:
    return Activity(type=ActivityTypes.message, text=text, text_format="markdown", summary=summary or None)


def message_activity(message: TeamsMessage) -> Activity:
    """A turn message: its text, its card of buttons, the "AI generated" label and, under a
    finished answer, Teams' own 👍 / 👎 (``feedbackLoop``; never with ``feedbackLoopEnabled``)."""
    activity = text_activity(message.text, message.summary)
    if message.card is not None:
        activity.attachments = [Attachment(content_type=ADAPTIVE_CARD, content=message.card)]
    activity.entities = [AIGeneratedLabel()]
    if message.feedback_turn is not None:
        activity.channel_data = {"feedbackLoop": {"type": "default"}}
    return activity


def _refused(exc: TeamsRefused) -> StreamRefused:
    stopped = exc.code == STREAM_REFUSED and "cancel" in exc.detail.lower()
    return StreamRefused(exc.code or f"HTTP {exc.status}", stopped=stopped)


@dataclass
class TeamsTransport:
    """``bot.transport.LiveTransport`` for one conversation reference."""

    sender: Sender
    reference: ConversationReference
    personal: bool
    interval: float = 1.5
    lifetime: float = STREAM_LIFETIME
    name: str = "Teams"
    #: Called with (message id, turn) for each message carrying 👍 / 👎: Teams' feedback invoke
    #: names only the message (``bot.message_records``). Must not raise.
    rated: Callable[[str, str], Awaitable[None]] | None = None
    #: Suggested actions under the turn's finished answer (a personal chat's first answer).
    suggestions: SuggestedActions | None = None
    _stream_id: str | None = None
    _sequence: int = 0

    @property
    def stream_id(self) -> str | None:
        return self._stream_id

    @property
    def limits(self) -> Limits:
        return Limits(message_bytes=MESSAGE_LIMIT, edit_interval=self.interval, can_stream=self.personal,
                      stream_bytes=MESSAGE_LIMIT, append_interval=self.interval, stream_lifetime=self.lifetime,
                      close_replaces=True, final_paced=False,
                      native_stop=self.personal)  # a personal chat streams, with Teams' own Stop

    render = staticmethod(turn_messages)
    stream_text = staticmethod(stream_text)

    async def pace(self, kind: Literal["append", "edit"]) -> None:
        return None  # Sender's limiter paces every call

    async def _typing(self, text: str, kind: StreamType) -> None:
        self._sequence += 1
        info = StreamInfo(stream_type=kind, stream_sequence=self._sequence, stream_id=self._stream_id)
        try:
            activity = Activity(type=ActivityTypes.typing, text=text, entities=[info])
            sent = await self.sender.send(self.reference, activity)
        except TeamsRefused as exc:
            raise _refused(exc) from exc
        self._stream_id = self._stream_id or sent

    async def open_stream(self, reply: Reply, text: str) -> str:
        await self.append(reply, "", "")
        return ""  # the informative update shows the status, not the text

    async def append(self, reply: Reply, text: str, delta: str) -> None:
        if text:
            await self._typing(text, "streaming")
            return
        status = next((b for b in reply.blocks if isinstance(b, Status)), None)
        await self._typing((status_line(status) if status else "Working…")[:INFORMATIVE_LIMIT], "informative")

    async def close_stream(self, reply: Reply | None, delta: str) -> str:
        message = turn_messages(reply or Reply(()), final=True)[0]
        activity = self._activity(message)
        activity.entities = [StreamInfo(stream_type="final", stream_id=self._stream_id), AIGeneratedLabel()]
        try:
            sent = await self.sender.send(self.reference, activity) or self._stream_id or ""
        except TeamsRefused as exc:
            raise _refused(exc) from exc
        await self._rated(sent, message)
        return sent

    def _activity(self, message: TeamsMessage) -> Activity:
        """``message_activity``, with the turn's suggested actions under its finished answer (the
        message carrying 👍 / 👎): an answer that failed or was stopped gets none."""
        activity = message_activity(message)
        if message.feedback_turn is not None and self.suggestions is not None:
            activity.suggested_actions = self.suggestions
        return activity

    async def _rated(self, message_id: str, message: TeamsMessage) -> None:
        """Record which turn a message's 👍 / 👎 rate: Teams' feedback invoke names only the message."""
        if message.feedback_turn is not None and message_id and self.rated is not None:
            await self.rated(message_id, message.feedback_turn)

    async def post(self, message: TeamsMessage) -> str:
        try:
            sent = await self.sender.send(self.reference, self._activity(message))
        except TeamsRefused as exc:
            raise TransportError(exc.code or f"HTTP {exc.status}") from exc
        await self._rated(sent, message)
        return sent

    async def edit(self, message_id: str, message: TeamsMessage) -> None:
        try:
            await self.sender.update(self.reference, message_id, self._activity(message))
        except TeamsRefused as exc:
            raise (MessageGone if exc.status == 404 else TransportError)(exc.code or f"HTTP {exc.status}") from exc
        await self._rated(message_id, message)
