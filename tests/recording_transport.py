"""``RecordingTransport``: a real ``bot.transport.LiveTransport`` that keeps its messages in memory.

It is the seam we own, implemented for tests: every call is recorded (``ops``), what a person would
see is kept per message (``screen``), and failures are scripted per call kind (``fail``) or by
deleting a message (``gone``). Its "platform" renders a reply as Markdown, split at ``message_bytes``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from bot.reply import Buttons, Reply
from bot.transport import Limits, MessageGone, StreamRefused, TransportError
from renderers.markdown import reply_to_markdown, split_text, stream_markdown, utf8_len


@dataclass(frozen=True)
class Shown:
    """One rendered message: its text, the reply and whether it is a final state."""

    text: str
    reply: Reply
    final: bool
    buttons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Op:
    kind: str  # open / append / close / post / edit
    id: str = ""
    text: str = ""
    message: Shown | None = None
    at: float = 0.0


@dataclass
class RecordingTransport:
    limits: Limits = field(default_factory=lambda: Limits(message_bytes=4000, edit_interval=0.0))
    name: str = "Recorder"
    #: Called with every posted or edited message (``tests.surfaces`` records them as engine calls).
    on_show: Callable[[str, Shown], None] | None = None
    ops: list[Op] = field(default_factory=list)
    screen: dict[str, str] = field(default_factory=dict)
    #: The next call of a kind raises the queued error.
    fail: dict[str, list[TransportError]] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    streaming: str | None = None  # the open stream's message id
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def stream_id(self) -> str | None:
        return self.streaming

    def render(self, reply: Reply, *, final: bool) -> list[Shown]:
        pieces = split_text(reply_to_markdown(reply, include_status=True) or " ", self.limits.message_bytes, utf8_len)
        labels = tuple(i.label for b in reply.blocks if isinstance(b, Buttons) for i in b.items)
        return [Shown(p, reply, final, labels if i == len(pieces) - 1 else ()) for i, p in enumerate(pieces)]

    def stream_text(self, reply: Reply, *, final: bool) -> str:
        return stream_markdown(reply, final=final)

    def _record(self, op: Op) -> None:
        self.ops.append(Op(op.kind, op.id, op.text, op.message, asyncio.get_running_loop().time()))
        self._changed.set()
        if errors := self.fail.get(op.kind):
            raise errors.pop(0)

    def of(self, kind: str) -> list[Op]:
        return [op for op in self.ops if op.kind == kind]

    async def until(self, kind: str, within: float = 2.0) -> Op:
        """Wait for the first call of ``kind`` (the event that proves a path ran)."""
        async with asyncio.timeout(within):
            while not self.of(kind):
                self._changed.clear()
                await self._changed.wait()
        return self.of(kind)[0]

    def thread(self) -> list[str]:
        """What a person reads in the thread, message by message."""
        return [self.screen[k] for k in sorted(self.screen, key=int) if k not in self.gone]

    async def pace(self, kind: Literal["append", "edit"]) -> None:
        return None  # no budget: pacing by interval is the policy's and is what the tests check

    async def open_stream(self, reply: Reply, text: str) -> str:
        self._record(Op("open", text=text))
        self.streaming = str(next(self._ids))
        self.screen[self.streaming] = text
        return text

    async def append(self, reply: Reply, text: str, delta: str) -> None:
        self._record(Op("append", self.streaming or "", delta))
        if self.streaming is None:
            raise StreamRefused("not_streaming")
        self.screen[self.streaming] += delta

    async def close_stream(self, reply: Reply | None, delta: str) -> str:
        self._record(Op("close", self.streaming or "", delta))
        ts, self.streaming = self.streaming or "", None
        if reply is not None:
            self.screen[ts] = self.render(reply, final=True)[0].text if self.limits.close_replaces \
                else self.screen[ts] + delta
        return ts

    async def post(self, message: Shown) -> str:
        self._record(Op("post", message=message))
        ident = str(next(self._ids))
        self.screen[ident] = message.text
        if self.on_show:
            self.on_show("post", message)
        return ident

    async def edit(self, message_id: str, message: Shown) -> None:
        self._record(Op("edit", message_id, message=message))
        if message_id in self.gone:
            raise MessageGone("message_not_found")
        self.screen[message_id] = message.text
        if self.on_show:
            self.on_show("edit", message)
