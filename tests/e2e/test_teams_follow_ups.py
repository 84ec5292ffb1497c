"""Teams follow-ups: a personal chat's first answer offers up to three data-work next steps as
suggested actions; later answers, and answers in channels, offer none. Through the real botbuilder
CloudAdapter and the fake Bot Connector."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import events as ev
from bot.conversation import Turn
from tests.fakes.bot_connector import Call
from tests.fakes.scripted_agent import Step
from tests.teams_harness import LOCAL, fixture, teams

pytestmark = pytest.mark.e2e  # starts servers

FOLLOW_UPS = "Top 5|Show the top 5 rows by amount;;Chart|Chart amount by month;;Nulls|Count missing values;;More|more"
PERSONAL = fixture("personal_message")["conversation"]["id"]


def script(turn: Turn) -> list[Step]:
    return [ev.FinalText(f"Answer to: {turn.text}")]


def suggested(calls: list[Call], text: str) -> list[list[tuple[str, str, str]]]:
    """The suggested actions (type, title, value) of each message showing ``text``."""
    return [[(a["type"], a["title"], a["value"]) for a in (c.body.get("suggestedActions") or {}).get("actions", ())]
            for c in calls if c.body.get("type") == "message" and text in (c.body.get("text") or "")]


async def test_a_personal_chat_s_first_answer_offers_three_follow_ups_and_later_answers_none(tmp_path: Path) -> None:
    async with teams(tmp_path, script, env={**LOCAL, "DATATHREAD_FOLLOW_UPS": FOLLOW_UPS}) as h:
        await h.post(fixture("personal_message", text="load sales.csv"))
        calls = await h.turn_done(PERSONAL)
        [*_, final] = suggested(calls, "Answer to: load sales.csv")
        assert final == [("imBack", "Top 5", "Show the top 5 rows by amount"),
                         ("imBack", "Chart", "Chart amount by month"), ("imBack", "Nulls", "Count missing values")]
        await h.post(fixture("personal_message", id="1732180440002", text="and by region?"))
        await h.until(lambda _: any(c.body.get("type") == "message" and "by region" in (c.body.get("text") or "")
                                    and "✅" in (c.body.get("text") or "") for c in h.to(PERSONAL)))
        assert all(actions == [] for actions in suggested(h.to(PERSONAL), "Answer to: and by region?"))


async def test_a_channel_s_first_answer_offers_no_suggested_actions(tmp_path: Path) -> None:
    raw = fixture("channel_new_post_mention")
    conversation = raw["conversation"]["id"]
    async with teams(tmp_path, script) as h:
        await h.post(raw)
        calls = await h.turn_done(conversation)
        answers = [c for c in calls if c.body.get("type") == "message" and "Answer to" in (c.body.get("text") or "")]
        assert answers and not any("suggestedActions" in c.body for c in answers)
