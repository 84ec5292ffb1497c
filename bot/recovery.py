"""Start-up clean-up after a crash: every turn left in the journal ends with a short note.

Run by each adapter once it can reach its platform, before it reports itself healthy. A turn's
live message (its ids are in the journal) is replaced by ``INTERRUPTED`` (posted afresh when it
is gone or was never shown), its status / 👀 reaction is cleared, and the claim of the delivery
that started it is released: Slack's redelivery of that event then runs as a new turn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from bot.journal import INTERRUPTED, JournalStore, TurnInFlight
from bot.live_turn import redraw
from bot.reply import Notice, Reply
from bot.storage.base import StateStore
from bot.surface import Surface, best_effort

log = logging.getLogger(__name__)


async def end_interrupted(state: StateStore, platform: str,
                          surface_for: Callable[[TurnInFlight], Surface | None]) -> int:
    """End every journalled turn of ``platform`` that a crash cut off; the number ended.

    ``surface_for`` rebuilds a turn's surface from its record (``None``: it cannot be reached, the
    record is dropped). A failure to show the note is logged; the turn leaves the journal anyway,
    so one unreachable thread never blocks a start-up.
    """
    turns = await state.turns_in_flight(platform)
    for turn in turns:
        surface = surface_for(turn)
        if surface is not None:
            await end_live_message(surface, turn.messages, INTERRUPTED)
        if turn.event:
            await state.release_event(turn.event)
        await state.end_turn(turn.thread)
    if turns:
        log.info("ended %d %s turn(s) interrupted by a restart", len(turns), platform)
    return len(turns)


async def end_live_message(surface: Surface, messages: tuple[str, ...], note: str) -> None:
    """End a turn someone else began (a crashed process, a dead replica): its first live message
    (``messages``: the ids it showed) becomes ``note``, posted afresh when that message is gone or
    none was shown; its status / 👀 reaction is cleared. Never raises: a failure is logged."""
    try:
        transport = surface.live_transport()
        ended = Reply((Notice(note, "warning"),), note)
        await redraw(transport, list(messages[:1]), transport.render(ended, final=True))
    except Exception:
        log.warning("could not end an interrupted turn's live message", exc_info=True)
    await best_effort(surface.set_status(None))


class TurnJournal:
    """Keeps one running turn's journal record current: written when its live message ids change
    (so a restart can address the message), removed when the turn ends."""

    def __init__(self, state: JournalStore, record: TurnInFlight) -> None:
        self._state = state
        self._record = record
        self._written = False

    async def note(self, messages: tuple[str, ...]) -> None:
        """Record the turn with its live message ids (a no-op while they stay the same)."""
        if self._written and messages == self._record.messages:
            return
        self._record = replace(self._record, messages=messages)
        self._written = True
        await self._state.journal_turn(self._record)

    async def end(self) -> None:
        """The turn ended (done, failed or stopped): a restart has nothing to clean up."""
        await self._state.end_turn(self._record.thread)
