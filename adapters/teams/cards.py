"""``CardIndex``: which card the bot sent carries which button token.

Some Teams clicks do not say which card was clicked (no ``replyToId``, or ``-1``). Every token is
sealed for one card, so the token the click carries finds the card again, as long as this process
sent it. The index is bounded and in memory: after a restart, or once a card is old enough to
have been forgotten, the result is posted as a new card in the same reply chain instead.
"""

from __future__ import annotations

from collections import OrderedDict

from bot.reply import Button, Buttons, Reply, Select


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


class CardIndex:
    """Token -> id of the card (activity) that carries it; the oldest are forgotten first."""

    def __init__(self, capacity: int = 20_000) -> None:
        self._capacity = capacity
        self._cards: OrderedDict[str, str] = OrderedDict()

    def remember(self, reply: Reply, card_id: str) -> None:
        """Record that the card ``card_id`` now shows ``reply`` (after a send or an update)."""
        for token in reply_tokens(reply):
            self._cards[token] = card_id
            self._cards.move_to_end(token)
        while len(self._cards) > self._capacity:
            self._cards.popitem(last=False)

    def find(self, token: str) -> str | None:
        """The card carrying ``token``, if this process sent it and still remembers it."""
        return self._cards.get(token) if token else None
