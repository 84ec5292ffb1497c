"""The seam between the live-turn policy (``bot.live_turn``) and a surface: how messages get there.

A transport knows its platform's calls, renderers, limits and rate budgets; it decides nothing about
*what* to show or *when* to switch from streaming to editing: that is ``bot.live_turn.LiveTurn``'s
job, once for every surface. ``M`` is the transport's rendered message (Slack blocks, a Teams
activity, console lines); the policy only passes it from ``render`` back to ``post`` / ``edit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from bot.reply import Reply

M = TypeVar("M")
M_co = TypeVar("M_co", covariant=True)


@dataclass(frozen=True)
class Limits:
    """What one thread on a surface allows. Sizes are UTF-8 bytes, times seconds."""

    #: Longest text one posted message holds (the renderer splits longer replies into several).
    message_bytes: int
    #: Least time between two edits of one message (the final state included).
    edit_interval: float
    #: The final edit waits for ``edit_interval`` too (Slack: the interval is a per-message limit).
    #: False where the interval only spares the platform during the turn and the transport's own
    #: limiter keeps the hard limits (Teams), so the end of a turn shows at once.
    final_paced: bool = True
    #: Whether a stream can be opened in this thread at all.
    can_stream: bool = False
    #: Longest text one stream may hold; past it the turn continues by editing.
    stream_bytes: int = 0
    #: Least time between two stream appends (the transport may pace further, e.g. per workspace).
    append_interval: float = 0.0
    #: Seconds after which the policy closes a stream (the transport sets it under the platform's cap).
    stream_lifetime: float | None = None
    #: Closing a stream with a reply shows that reply in full (Teams' final message). Otherwise the
    #: close can only append to the streamed text (Slack's ``chat.stopStream``).
    close_replaces: bool = False
    #: The open stream shows ``Reply.steps`` as tasks of their own (Slack's ``task_update`` chunks):
    #: a change of the steps is streamed even when the text did not grow.
    stream_steps: bool = False
    #: The surface shows buttons (the console has typed commands instead).
    buttons: bool = True
    #: The platform shows a Stop control of its own while the turn runs (Slack's agent session,
    #: Teams' streaming Stop, the console's Ctrl-C); otherwise the running turn carries our Stop button.
    native_stop: bool = False


class TransportError(Exception):
    """The platform refused a call. ``code`` is the platform's short error code: safe to show."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class MessageGone(TransportError):
    """The message to edit is no longer there (deleted, too old to edit): post it again."""


class StreamRefused(TransportError):
    """The stream cannot go on. ``message_id`` names the stream's message when it stays and can be
    edited from now on (else the turn continues in a new message); ``stopped`` says the person
    pressed the platform's Stop button."""

    def __init__(self, code: str, *, message_id: str | None = None, stopped: bool = False) -> None:
        super().__init__(code)
        self.message_id = message_id
        self.stopped = stopped


class TurnRenderer(Protocol[M_co]):
    """The shape every renderer offers for a running turn (``renderers.slack`` / ``teams`` / ``terminal``)."""

    def render(self, reply: Reply, *, final: bool) -> Sequence[M_co]:
        """``reply`` as one or more messages, each within ``Limits.message_bytes``, in order."""
        ...

    def stream_text(self, reply: Reply, *, final: bool) -> str:
        """The text a stream shows for ``reply``; while a turn runs it only grows at its end."""
        ...


class LiveTransport(TurnRenderer[M], Protocol[M]):
    """Messages in one thread. Every method raises ``TransportError`` (or a subclass) when refused."""

    #: The platform's name as a person knows it ("Slack"), for notices.
    name: str

    @property
    def limits(self) -> Limits: ...

    @property
    def stream_id(self) -> str | None:
        """The open stream's message id once the platform gave one, else ``None`` (a restart after
        a crash uses it to end the message: ``bot.journal``)."""
        ...

    async def pace(self, kind: Literal["append", "edit"]) -> None:
        """Wait until the platform's budget allows one more live call of ``kind``, and reserve it.
        The policy cancels this wait when the turn ends meanwhile, so it must hold no state open."""
        ...

    async def open_stream(self, reply: Reply, text: str) -> str:
        """Start a stream showing ``reply`` (``text`` is its stream text); the text actually shown.
        ``StreamRefused`` when the platform will not stream here."""
        ...

    async def append(self, reply: Reply, text: str, delta: str) -> None:
        """Show ``text`` in the stream; ``delta`` is what is new after the text already shown (may
        be empty while nothing was streamed: a placeholder may be refreshed; or, with
        ``Limits.stream_steps``, when only the reply's steps changed)."""
        ...

    async def close_stream(self, reply: Reply | None, delta: str) -> str:
        """End the stream and return its message id, which ``edit`` accepts from then on. With
        ``reply`` the message ends showing it (see ``Limits.close_replaces``; otherwise ``delta`` is
        appended and the reply's buttons are attached); with ``None`` it keeps what was streamed."""
        ...

    async def post(self, message: M) -> str:
        """Post a new message in the thread; its id."""
        ...

    async def edit(self, message_id: str, message: M) -> None:
        """Replace a posted message; ``MessageGone`` when it is no longer there."""
        ...
