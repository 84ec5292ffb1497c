"""Stop, feedback and the AI label on Teams, end to end: the real CloudAdapter against the fake
Bot Connector.

In a channel (no streaming, so no Teams Stop) the edited turn message carries our Stop button; a
click by the owner ends the turn within 2 s with "Stopped" and the next message works. The typed
word ``stop`` does the same in a personal chat. Finished answers carry Teams' own 👍 / 👎
(``feedbackLoop``) and the "AI generated" label; a ``message/submitAction`` invoke records the
verdict with its comment, on the turn of the message rated, even after a restart and a later turn.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from adapters.teams.inbound import thread_key
from bot import events as ev
from bot.actions import LAST_TURN
from bot.conversation import Turn
from tests.fakes.scripted_agent import Sleep
from tests.teams_harness import TeamsHarness, fixture, stop_token, teams, turn_recorded

pytestmark = pytest.mark.e2e  # starts servers

PERSONAL = "a:1Pz8Y2personalchatid-Ada"
CHANNEL_CHAIN = "19:4c1d3a2f9b8e4d7c@thread.tacv2;messageid=1732180811554"
STOP_LIMIT = 2.0


def script(turn: Turn) -> list[Any]:
    if "stop" in turn.text:
        raise AssertionError("a typed stop must never reach the agent")
    if "EMEA" in turn.text or "summarise" in turn.text:
        return [ev.Rationale("Crunching every row. "), Sleep(30), ev.FinalText("never shown")]
    return [ev.FinalText(f"Answer to {turn.text}.")]


def stopped_shown(h: TeamsHarness, conversation: str) -> bool:
    return any("Stopped" in (c.body.get("text") or "") and c.body.get("type") == "message"
               for c in h.to(conversation))


async def test_the_stop_button_on_a_channel_turn_stops_it_within_2_s(tmp_path: Path) -> None:
    async with teams(tmp_path, script) as h:
        await h.post(fixture("channel_new_post_mention", text="<at>datathread</at> all of EMEA"))
        await h.until(lambda _: stop_token(h, CHANNEL_CHAIN))
        token, message_id = stop_token(h, CHANNEL_CHAIN)  # type: ignore[misc]
        click = fixture("channel_reply_in_chain", id="1732181020999", text="", replyToId=message_id,
                        value={"datathread": "stop", "token": token},
                        **{"from": fixture("channel_new_post_mention")["from"]})
        began = time.monotonic()
        await h.post(click)
        await h.until(lambda _: stopped_shown(h, CHANNEL_CHAIN), within=10)
        elapsed = time.monotonic() - began
        print(f"stop -> Stopped visible: Teams channel / button: {elapsed * 1000:.0f} ms")
        assert elapsed <= STOP_LIMIT
        final = [c for c in h.to(CHANNEL_CHAIN) if "Stopped" in (c.body.get("text") or "")][-1]
        assert "Crunching every row" in final.body["text"]
        assert not any((a.get("data") or {}).get("datathread") == "stop"
                       for att in final.body.get("attachments") or () for a in att["content"].get("actions", ()))
        await h.post(fixture("channel_reply_in_chain", id="1732181021000", text="<at>datathread</at> and then?",
                             **{"from": fixture("channel_new_post_mention")["from"]}))
        await h.until(lambda _: any("Answer to and then?" in (c.body.get("text") or "")
                                    for c in h.to(CHANNEL_CHAIN)))


async def test_typing_stop_in_a_personal_chat_stops_the_streamed_turn(tmp_path: Path) -> None:
    async with teams(tmp_path, script) as h:
        await h.post(fixture("personal_message"))
        await h.until(lambda _: any("Crunching" in (c.body.get("text") or "") for c in h.to(PERSONAL)))
        began = time.monotonic()
        await h.post(fixture("personal_message", id="1732180443999", text="stop"))
        await h.until(lambda _: stopped_shown(h, PERSONAL), within=10)
        elapsed = time.monotonic() - began
        print(f"stop -> Stopped visible: Teams personal / typed: {elapsed * 1000:.0f} ms")
        assert elapsed <= STOP_LIMIT
        assert not stop_token(h, PERSONAL)  # Teams streams here, with its own Stop


async def test_a_finished_answer_has_teams_feedback_and_the_ai_label_and_a_verdict_is_recorded(
        tmp_path: Path) -> None:
    async with teams(tmp_path, script) as h:
        await h.post(fixture("personal_message", text="how many rows?"))
        calls = await h.turn_done(PERSONAL)
        final = [c for c in calls
                 if c.body.get("type") == "message" and "Answer to" in (c.body.get("text") or "")][-1]
        assert final.body["channelData"]["feedbackLoop"] == {"type": "default"}
        assert "feedbackLoopEnabled" not in final.body["channelData"]
        assert any("AIGeneratedContent" in (e.get("additionalType") or ()) for e in final.body["entities"])
        assert "👍" not in str(final.body.get("attachments"))  # Teams' own buttons, not a card of ours
        invoke = fixture("personal_message", type="invoke", id="inv-1", text=None, replyToId=final.returned_id,
                         value={"actionName": "feedback", "actionValue": {
                             "reaction": "dislike", "feedback": '{"feedbackText": "wrong column"}'}})
        invoke["name"] = "message/submitAction"
        response = await h.post(invoke)
        assert response.status == 200
        await h.until(lambda _: any("Thanks for the feedback" in (c.body.get("text") or "") for c in h.to(PERSONAL)))
        [record] = await h.engine.state.feedback()
        assert (record.positive, record.comment, record.platform) == (False, "wrong column", "teams")
        assert record.turn  # the rated message names its turn


def answer(h: TeamsHarness, text: str) -> list[Any]:
    return [c for c in h.to(PERSONAL) if c.body.get("type") == "message" and text in (c.body.get("text") or "")]


async def test_after_a_restart_a_verdict_on_an_older_answer_rates_that_answer_s_turn(tmp_path: Path) -> None:
    first = fixture("personal_message", id="1732180500001", text="first question")
    async with teams(tmp_path, script) as h:
        await h.post(first)
        [older] = await h.until(lambda _: answer(h, "Answer to first question."))
        older_turn = await turn_recorded(h, first, older.returned_id)
        await h.post(fixture("personal_message", id="1732180500002", text="second question"))
        [newer] = await h.until(lambda _: answer(h, "Answer to second question."))
        await turn_recorded(h, first, newer.returned_id)
    async with teams(tmp_path, script) as h:  # same home: a restart
        invoke = fixture("personal_message", type="invoke", id="inv-after-restart", text=None,
                         replyToId=older.returned_id, value={"actionName": "feedback", "actionValue": {
                             "reaction": "like", "feedback": '{"feedbackText": "this one was right"}'}})
        invoke["name"] = "message/submitAction"
        assert (await h.post(invoke)).status == 200
        await h.until(lambda _: any("Thanks for the feedback" in (c.body.get("text") or "") for c in h.to(PERSONAL)))
        [record] = await h.engine.state.feedback()
        latest = await h.engine.state.get_value(LAST_TURN, thread_key(first).digest)
        assert (record.turn, record.positive, record.comment) == (older_turn, True, "this one was right")
        assert latest and record.turn != latest  # not the thread's latest turn
