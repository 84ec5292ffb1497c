"""``MessageRecords``: what a message the bot sent stands for, shared by every replica and kept
across restarts in the state store.

Two questions a platform event can leave open (Teams asks both):

- **Which turn does a rated message belong to?** Teams' 👍 / 👎 invoke names only the message
  (its ``replyToId``), so the turn each finished answer rates is recorded when it is sent.
- **Which card did a click come from?** Some clicks do not name their card. Every button token is
  sealed for one thread, so the tokens a card carries find it again.

Records are per thread and expire on their own (``StateStore.remember``): a card's with the data its
buttons page (``Settings.retention``); a rated message's after ``RATED_AT_LEAST`` or the retention,
whichever is longer, because verdicts come late (the next morning) and one record per answer is
small. Tokens are stored as hashes: records stay small and hold no usable token.

Keeping or reading a record never raises: the store failing means only that a later click posts a
new card, or a verdict rates the thread's latest turn (logged), never that a reply fails.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

from bot.messages import ThreadKey
from bot.reply import Button, Buttons, Reply, Select
from bot.storage.base import StateStore

log = logging.getLogger(__name__)

RATED = "rated-message"
CARDS = "card-token"
#: The least time a rated message's turn is kept, whatever the data retention.
RATED_AT_LEAST = timedelta(days=7)


def reply_tokens(reply: Reply) -> list[str]:
    """Every token a card of ``reply`` carries: its buttons' and its choice lists' options'."""
    out: list[str] = []
    for block in reply.blocks:
        if isinstance(block, Buttons):
            for item in block.items:
                if isinstance(item, Button):
                    out.append(item.token)
                elif isinstance(item, Select):
                    out.extend(o.token for o in item.options)
    return out


def _token_key(thread: ThreadKey, token: str) -> str:
    return f"{thread.digest}:{hashlib.sha256(token.encode()).hexdigest()[:32]}"


class MessageRecords:
    """Message -> turn and token -> card records of sent messages (see the module docstring)."""

    def __init__(self, state: StateStore, retention: timedelta) -> None:
        self._state = state
        self._card_ttl = retention
        self._rated_ttl = max(retention, RATED_AT_LEAST)

    async def rated(self, thread: ThreadKey, message_id: str, turn: str) -> None:
        """Record that ``message_id`` in ``thread`` is the answer of ``turn`` (its 👍 / 👎 rate it)."""
        if not message_id or not turn:
            return
        try:
            await self._state.remember(RATED, {f"{thread.digest}:{message_id}": turn}, self._rated_ttl)
        except Exception:
            log.warning("could not record which turn message %s answers", message_id, exc_info=True)

    async def turn_of(self, thread: ThreadKey, message_id: str) -> str:
        """The turn ``message_id`` answers, or ``""`` (the thread's latest, as a typed ``good``
        means) when no record of it is kept."""
        if not message_id:
            return ""
        try:
            return await self._state.recall(RATED, f"{thread.digest}:{message_id}") or ""
        except Exception:
            log.warning("could not read which turn message %s answers", message_id, exc_info=True)
            return ""

    async def card_shows(self, thread: ThreadKey, card_id: str, reply: Reply) -> None:
        """Record that the card ``card_id`` in ``thread`` now shows ``reply`` (after a send or an
        update): each of its tokens finds it (a token on several cards finds the latest)."""
        tokens = reply_tokens(reply)
        if not card_id or not tokens:
            return
        try:
            await self._state.remember(CARDS, {_token_key(thread, t): card_id for t in tokens}, self._card_ttl)
        except Exception:
            log.warning("could not record the buttons of card %s", card_id, exc_info=True)

    async def card_with(self, thread: ThreadKey, token: str) -> str | None:
        """The card in ``thread`` that carries ``token``, while its record is kept; else ``None``."""
        if not token:
            return None
        try:
            return await self._state.recall(CARDS, _token_key(thread, token))
        except Exception:
            log.warning("could not look up the card of a click", exc_info=True)
            return None
