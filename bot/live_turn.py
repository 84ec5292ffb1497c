"""How a running turn is shown, once for every surface: stream or edit, pacing, the final state.

Rules (each has a test in ``tests/unit/test_live_turn.py`` named after it):

- **Stream while the text only grows and fits.** Where the transport can stream, the turn opens a
  stream and appends what is new. When the text stops being an extension of what was streamed,
  grows past the stream's byte limit, the stream is refused or expired, or its lifetime is near its
  end, the stream is closed and the rest of the turn edits that message (or, when the stream's
  message is gone, a new one).
- **Pace.** Changes coalesce: at most one edit per ``Limits.edit_interval``, one append per
  ``Limits.append_interval``; with an interval of 0 every change is shown at once, in order. A
  turn's first change skips the wait for the platform's shared budget (``LiveTransport.pace``):
  its first progress never queues behind other turns.
- **Re-post a vanished message**: an edit answered with ``MessageGone`` posts the message again.
- **Split**: a state longer than one message is shown as several messages, in order.
- **The final state is always sent**, even after failed updates, with the end-of-turn buttons where
  the surface has buttons. If the platform refuses it, a short notice says so and where the
  results are, so a turn never ends silently.
- **Steps as steps**: where the stream shows a reply's steps as tasks of their own
  (``Limits.stream_steps``), a change of the steps alone is an append too; the stream text then
  leaves the steps out (the transport's ``stream_text``), and editing shows everything as text.
- **Stop**: a stream the person stopped (``StreamRefused.stopped``) calls ``on_stop``. Where the
  platform has no Stop control of its own (``Limits.native_stop``) and shows buttons, every state
  before the final one carries ``stop_buttons``; the final state carries ``end_buttons`` and, on
  a finished answer, ``feedback`` (👍 / 👎) instead.

A failing live update is logged and does not end the turn: the live view is best effort.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, Generic

from bot.reply import Buttons, Notice, Reply, Step
from bot.transport import LiveTransport, M, MessageGone, StreamRefused, TransportError

log = logging.getLogger(__name__)

def unshown_notice(platform: str, error: str, buttons: Buttons | None) -> Reply:
    """The message that replaces a turn's end when the platform would not show it."""
    text = (f"This turn finished, but {platform} would not show its result here ({error}). "
            "Its files are in the conversation's workspace: use the Files button or send `files`; "
            "or ask again for a shorter answer.")
    return Reply((Notice(text, "error"), *((buttons,) if buttons else ())), "Could not show the result")


async def redraw(transport: LiveTransport[M], shown: list[str], messages: Sequence[M]) -> None:
    """Show ``messages`` in place of the messages ``shown`` (their ids), in order.

    Message ``i`` replaces ``shown[i]``; one that is gone is posted again, and messages past
    ``shown`` are posted. ``shown`` is updated as that happens, so a failure part-way still leaves
    it naming what is on screen. Other refusals are raised.
    """
    for i, message in enumerate(messages):
        if i < len(shown):
            try:
                await transport.edit(shown[i], message)
                continue
            except MessageGone as exc:
                log.info("a message is gone (%s); posting it again", exc.code)
            shown[i] = await transport.post(message)
        else:
            shown.append(await transport.post(message))


class LiveTurn(Generic[M]):
    """One turn's live view on one transport. ``render`` gives the turn's current state.

    Call ``start`` once, ``changed`` after every event, ``finish`` once at the end.
    """

    def __init__(self, transport: LiveTransport[M], render: Callable[[], Reply], *,
                 end_buttons: Buttons | None = None, on_stop: Callable[[], Any] | None = None,
                 stop_buttons: Buttons | None = None, feedback: Callable[[], Buttons | None] | None = None) -> None:
        self._t = transport
        self._render = render
        self._end_buttons = end_buttons
        self._stop_buttons = stop_buttons
        self._feedback = feedback
        self._on_stop = on_stop
        self._streamed: str | None = None  # the streamed text while a stream is open
        self._streamed_steps: tuple[Step, ...] = ()  # the steps the stream shows (``Limits.stream_steps``)
        self._stream_opened = 0.0
        self._shown: list[str] = []  # ids of the messages that show the turn
        self._last_edit = float("-inf")
        self._dirty = asyncio.Event()
        self._lock = asyncio.Lock()  # updates, the lifetime close and finish never interleave
        self._pump: asyncio.Task[None] | None = None
        self._sending = False  # the pump is in a platform call: let it finish, or an id may be lost

    # ---- the engine's side -----------------------------------------------------------------

    @property
    def message_ids(self) -> tuple[str, ...]:
        """Ids of the messages showing the turn now (the open stream's, while one is open)."""
        if self._streamed is not None and (stream := self._t.stream_id):
            return (stream,)
        return tuple(self._shown)

    async def start(self) -> None:
        """Show the first state at once; never raises (the final state is still sent by ``finish``)."""
        reply = self._working()
        async with self._lock:
            if self._t.limits.can_stream:
                try:
                    self._streamed = await self._t.open_stream(reply, self._t.stream_text(reply, final=False))
                    self._streamed_steps = reply.steps
                    self._stream_opened = time.monotonic()
                except StreamRefused as exc:
                    self._refused(exc)
                except Exception:
                    log.warning("could not open a stream", exc_info=True)
            if self._streamed is None:
                await self._best_effort(self._redraw(reply, final=False))
        if self._paced():
            self._pump = asyncio.create_task(self._run(), name="live-turn")

    async def changed(self) -> None:
        """The turn changed: show it now (interval 0) or at the next allowed moment."""
        if self._pump is None and not self._paced():
            async with self._lock:
                await self._best_effort(self._show(self._working(), final=False))
        else:
            self._dirty.set()

    async def finish(self) -> None:
        """Show the final state (with the end buttons); if the platform refuses it, say so."""
        state = self._render()
        buttons = self._end_buttons if self._t.limits.buttons else None
        verdict = self._feedback() if self._feedback is not None and self._t.limits.buttons else None
        extra = tuple(b for b in (buttons, verdict) if b is not None)
        final = replace(state, blocks=(*state.blocks, *extra)) if extra else state
        if self._pump is not None and not self._sending:
            self._pump.cancel()  # waiting for a change or for the platform's budget: moot now
        async with self._lock:
            # Holding the lock, the pump is between sends: stopping it cannot lose a sent message's id.
            if self._pump is not None:
                self._pump.cancel()
            try:
                await self._show(final, final=True)
            except Exception as exc:
                error = exc.code if isinstance(exc, TransportError) else "an unexpected error"
                log.warning("the platform refused the end of a turn (%s)", error, exc_info=True)
                try:
                    notice = unshown_notice(self._t.name, error, buttons)
                    await redraw(self._t, [], self._t.render(notice, final=True))
                except Exception:
                    log.warning("could not tell the thread either", exc_info=True)
        if self._pump is not None:
            await asyncio.gather(self._pump, return_exceptions=True)

    def _working(self) -> Reply:
        """The current state as a running turn shows it: with our Stop button where the platform
        has no Stop of its own."""
        state = self._render()
        limits = self._t.limits
        if self._stop_buttons is None or not limits.buttons or limits.native_stop:
            return state
        return replace(state, blocks=(*state.blocks, self._stop_buttons))

    # ---- pacing ----------------------------------------------------------------------------

    def _paced(self) -> bool:
        limits = self._t.limits
        return limits.edit_interval > 0 or limits.append_interval > 0 or limits.stream_lifetime is not None

    def _deadline(self) -> float | None:
        lifetime = self._t.limits.stream_lifetime
        if self._streamed is None or lifetime is None:
            return None
        return self._stream_opened + lifetime

    async def _run(self) -> None:
        # The first change goes out at once, later ones at most once per interval; an open stream
        # is closed at its deadline even when nothing changes (a long silent code run). The first
        # change does not wait for the platform's shared budget either (the transport charges it
        # all the same): a turn's first progress never queues behind other turns' updates.
        next_at = 0.0
        first = True
        while True:
            deadline = self._deadline()
            try:
                async with asyncio.timeout(None if deadline is None else max(0.0, deadline - time.monotonic())):
                    await self._dirty.wait()
            except TimeoutError:
                if self._deadline() is not None:
                    log.info("closing a stream at the end of its lifetime; continuing by editing")
                    await self._send(self._leave_stream)
                continue
            wait = next_at - time.monotonic()
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._dirty.clear()
            streaming = self._streamed is not None
            if not first:
                await self._t.pace("append" if streaming else "edit")
            first = False
            await self._send(lambda reply: self._show(reply, final=False))
            limits = self._t.limits
            next_at = time.monotonic() + (limits.append_interval if streaming else limits.edit_interval)

    async def _send(self, show: Callable[[Reply], Awaitable[None]]) -> None:
        """Show the current state with ``show``; ``finish`` lets this run to its end."""
        self._sending = True
        try:
            async with self._lock:
                await self._best_effort(show(self._working()))
        finally:
            self._sending = False

    async def _best_effort(self, call: Any) -> None:
        try:
            await call
        except Exception:
            log.warning("live update failed", exc_info=True)

    # ---- showing ---------------------------------------------------------------------------

    def _expiring(self) -> bool:
        deadline = self._deadline()
        return deadline is not None and time.monotonic() >= deadline

    async def _show(self, reply: Reply, *, final: bool) -> None:
        if self._streamed is not None:
            try:
                if await self._stream(reply, final):
                    return
            except StreamRefused as exc:
                self._refused(exc)
        await self._redraw(reply, final=final)

    async def _stream(self, reply: Reply, final: bool) -> bool:
        """Show ``reply`` through the open stream; False when the turn must continue by editing."""
        assert self._streamed is not None
        limits = self._t.limits
        text = self._t.stream_text(reply, final=final)
        extends = text.startswith(self._streamed) and len(text.encode("utf-8", "surrogatepass")) <= limits.stream_bytes
        delta = text[len(self._streamed):] if extends else ""
        if final and (extends or limits.close_replaces):
            self._shown = [await self._t.close_stream(reply, delta)]
            self._streamed = None
            if limits.close_replaces:  # the close showed the first message; the rest follow
                await self._redraw(reply, final=True, skip_first=True)
            return True
        if not extends or self._expiring():
            await self._leave_stream(reply)
            return limits.close_replaces and not final
        steps_changed = limits.stream_steps and reply.steps != self._streamed_steps
        if delta or not self._streamed or steps_changed:
            await self._t.append(reply, text, delta)
            self._streamed = text
            self._streamed_steps = reply.steps
        return True

    async def _leave_stream(self, reply: Reply) -> None:
        """Close the stream for good: with ``reply`` where the close can show it, else as it is."""
        if self._streamed is None:
            return
        replaces = self._t.limits.close_replaces
        try:
            self._shown = [await self._t.close_stream(reply if replaces else None, "")]
            self._last_edit = time.monotonic()
        except StreamRefused as exc:
            self._refused(exc)
            return
        finally:
            self._streamed = None
        if replaces:
            await self._redraw(reply, final=False, skip_first=True)

    def _refused(self, exc: StreamRefused) -> None:
        log.info("the stream was refused (%s); continuing by editing", exc.code)
        self._streamed = None
        self._shown = [exc.message_id] if exc.message_id else []
        if exc.stopped and self._on_stop is not None:
            # Soon, not now: stopping the turn cancels the task that may be running this update.
            asyncio.get_running_loop().call_soon(self._on_stop)

    async def _redraw(self, reply: Reply, *, final: bool, skip_first: bool = False) -> None:
        messages = self._t.render(reply, final=final)
        if skip_first:  # the closed stream already shows the first message
            if len(messages) > 1:
                shown = self._shown[1:]
                await redraw(self._t, shown, messages[1:])
                self._shown[1:] = shown
            return
        if self._shown and (not final or self._t.limits.final_paced):
            # At most one edit per interval, the final one included where the transport says so.
            pause = self._t.limits.edit_interval - (time.monotonic() - self._last_edit)
            if pause > 0:
                await asyncio.sleep(pause)
        self._last_edit = time.monotonic()
        await redraw(self._t, self._shown, messages)
