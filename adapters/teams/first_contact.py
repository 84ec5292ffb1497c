"""Teams first contact: the welcome a personal chat gets when a person adds the bot, and the
follow-ups under the chat's first answer.

Up to three of the configured prompts (``bot.first_contact``) become Teams suggested actions
(``imBack``: a click sends the prompt's message as the person's own message). Teams shows them
under the latest bot message only and removes them once the person replies. They are sent in
personal chats only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botbuilder.schema import Activity, ActivityTypes, CardAction, SuggestedActions

from bot.first_contact import Prompt
from bot.welcome import GREETING

#: Teams shows at most three suggested actions.
MAX_ACTIONS = 3


def suggested_actions(prompts: Sequence[Prompt]) -> SuggestedActions | None:
    """Up to ``MAX_ACTIONS`` prompts as ``imBack`` suggested actions; ``None`` for no prompts."""
    actions = [CardAction(type="imBack", title=p.title, value=p.message) for p in prompts[:MAX_ACTIONS]]
    return SuggestedActions(actions=actions) if actions else None


def welcome_activity(prompts: Sequence[Prompt]) -> Activity:
    """The greeting with up to ``MAX_ACTIONS`` prompts as ``imBack`` suggested actions."""
    suggested = suggested_actions(prompts)
    text = GREETING + ("\n\nTry one of these, or attach a file:" if suggested else "")
    activity = Activity(type=ActivityTypes.message, text=text, text_format="markdown")
    activity.suggested_actions = suggested
    return activity


def bot_added(raw: dict[str, Any]) -> bool:
    """A ``conversationUpdate`` saying the bot itself was added (the recipient is among the members added)."""
    bot = str((raw.get("recipient") or {}).get("id") or "")
    return bool(bot) and any(str(m.get("id") or "") == bot for m in raw.get("membersAdded") or ())
