"""Teams first contact: adding the bot to a personal chat, through the real botbuilder adapter and
the fake Bot Connector."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.teams_harness import fixture, teams

pytestmark = pytest.mark.e2e  # starts servers

PROMPTS = ("Explore|Show the columns of the attached file;;Trend|Chart sales over time;;Groups|Compare regions;;"
           "Help|help")


def installed(conversation_type: str = "personal", event_id: str = "f:install-1") -> dict[str, Any]:
    raw = fixture("personal_message")
    update = copy.deepcopy({key: raw[key] for key in ("channelId", "from", "conversation", "recipient", "channelData")})
    update["conversation"]["conversationType"] = conversation_type
    return {**update, "type": "conversationUpdate", "id": event_id,
            "membersAdded": [{"id": raw["recipient"]["id"]}, {"id": raw["from"]["id"]}]}


async def test_adding_the_bot_to_a_personal_chat_welcomes_once_with_three_suggested_actions(tmp_path: Path) -> None:
    async with teams(tmp_path, lambda turn: [], env={
            "DATATHREAD_TEAMS_ALLOW_UNAUTHENTICATED": "1", "DATATHREAD_SUGGESTED_PROMPTS": PROMPTS}) as h:
        conversation = installed()["conversation"]["id"]
        assert (await h.post(installed())).status < 300
        [welcome] = await h.until(lambda _: [c for c in h.to(conversation) if c.body.get("type") == "message"])
        assert "attach a CSV" in welcome.body["text"]
        actions = welcome.body["suggestedActions"]["actions"]
        assert [(a["type"], a["title"], a["value"]) for a in actions] == [
            ("imBack", "Explore", "Show the columns of the attached file"),
            ("imBack", "Trend", "Chart sales over time"), ("imBack", "Groups", "Compare regions")]
        await h.post(installed(event_id="f:install-2"))  # installed again (or redelivered)
        await h.post(fixture("personal_message"))  # the person's first message: its answer follows
        await h.until(lambda _: len([c for c in h.to(conversation) if c.body.get("type") == "message"]) >= 2)
        # Issue 10: the first answer offers follow-ups too, so a welcome is told by its greeting.
        welcomes = [c for c in h.to(conversation) if "suggestedActions" in c.body
                    and "attach a CSV" in (c.body.get("text") or "")]
        assert len(welcomes) == 1
