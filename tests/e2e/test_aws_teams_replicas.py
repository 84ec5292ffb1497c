"""Two Teams replicas (the real CloudAdapter on /api/messages and an engine each, in this process)
sharing moto's DynamoDB, S3 and SQS FIFO and one fake Bot Connector: an activity is taken in by the
replica it reaches and its turn run by whichever replica receives it from the queue.

To pin where a turn runs, most tests use ``split``: replica 0 takes activities in but runs no
queued turn, replica 1 runs them and takes nothing in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import events as ev
from bot.actions import LAST_TURN
from bot.conversation import Turn
from bot.engine import Engine
from tests.fakes.bot_connector import Call
from tests.fakes.scripted_agent import Sleep, WriteFile
from tests.slack_harness import until
from tests.teams_harness import (
    TeamsHarness,
    card_recorded,
    fixture,
    queue_settled,
    stop_token,
    teams_replicas,
    turn_recorded,
)

pytestmark = pytest.mark.e2e

PERSONAL = "a:1Pz8Y2personalchatid-Ada"
CHANNEL_CHAIN = "19:4c1d3a2f9b8e4d7c@thread.tacv2;messageid=1732180811554"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40
CSV = ("region,revenue\n" + "".join(f"region-{i:02d},{i * 10}\n" for i in range(1, 46))).encode()


def script(turn: Turn) -> list[Any]:
    if turn.attachments:
        return [ev.FinalText(" ".join(f"Got {a.name}: {a.path.read_bytes().decode()!r}." for a in turn.attachments))]
    if "stop" in turn.text:
        raise AssertionError("a typed stop must never reach the agent")
    if "slow" in turn.text:
        return [ev.Rationale("Crunching every row. "), Sleep(30), ev.FinalText("never shown")]
    if "table" in turn.text:
        return [WriteFile("regions.csv", CSV), ev.FinalText("Here you go.")]
    if "report" in turn.text:
        return [WriteFile("report.pdf", PDF), ev.FinalText("Here is the report.")]
    return [ev.FinalText(f"Answer to {turn.text}.")]


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[list[TeamsHarness]]:
    async with teams_replicas(tmp_path, script) as bots:
        yield bots


@pytest.fixture
async def split(tmp_path: Path) -> AsyncIterator[list[TeamsHarness]]:
    async with teams_replicas(tmp_path, script, runners=(1,)) as bots:
        yield bots


def personal(n: int, text: str | None, **changes: Any) -> dict[str, Any]:
    """A personal-chat message of conversation ``n`` (each its own thread)."""
    base = fixture("personal_message")
    return fixture("personal_message", **{"id": f"17321805{n:05d}", "text": text,
                   "conversation": {**base["conversation"], "id": f"{PERSONAL}-{n}"}, **changes})


def shown(h: TeamsHarness, conversation: str, text: str) -> list[Call]:
    """Messages (not stream updates) in ``conversation`` that show ``text``."""
    return [c for c in h.to(conversation) if c.body.get("type") == "message" and text in (c.body.get("text") or "")]


def first_page_card(h: TeamsHarness, conversation: str) -> tuple[Call, dict[str, Any]] | None:
    """The message in ``conversation`` whose card shows the first page of the 45-row table."""
    for c in h.to(conversation):
        for a in c.body.get("attachments") or ():
            if "rows 1–20 of 45" in str(a.get("content")):
                return c, a["content"]
    return None


def ran(bots: list[TeamsHarness], text: str) -> list[int]:
    return [i for i, b in enumerate(bots) for t in b.agent.turns if t.text == text]


async def test_each_teams_activity_is_answered_once_whichever_replica_its_retries_reach(
        pair: list[TeamsHarness]) -> None:
    for n in range(4):
        for retry in range(2):  # the Bot Connector's retry of one activity reaches the other replica
            response = await pair[(n + retry) % 2].post(personal(n, f"q{n}"))
            assert response.status in (200, 202)
    for n in range(4):
        await pair[0].until(lambda _, n=n: shown(pair[0], f"{PERSONAL}-{n}", f"Answer to q{n}."), within=20)
    await until(lambda: queue_settled(pair[0]), limit=20, what="every queued turn done")  # nothing left to answer twice
    for n in range(4):
        assert len(shown(pair[0], f"{PERSONAL}-{n}", f"Answer to q{n}.")) == 1
        assert len(ran(pair, f"q{n}")) == 1


async def test_a_turn_taken_in_by_one_replica_is_answered_by_the_other_in_the_same_thread(
        split: list[TeamsHarness]) -> None:
    assert (await split[0].post(fixture("channel_new_post_mention", text="<at>datathread</at> totals?"))).status == 202
    assert (await split[0].post(personal(7, "hello"))).status == 202
    calls = await split[0].until(lambda _: shown(split[0], CHANNEL_CHAIN, "Answer to totals?."), within=20)
    assert calls[0].conversation.endswith("messageid=1732180811554")  # in the post's reply chain
    await split[0].until(lambda _: shown(split[0], f"{PERSONAL}-7", "Answer to hello."), within=20)
    assert ran(split, "totals?") == [1] and ran(split, "hello") == [1]
    streamed = [e.get("streamType") for c in split[0].to(f"{PERSONAL}-7") for e in c.body.get("entities") or ()
                if e.get("type") == "streaminfo"]
    assert "final" in streamed  # a personal chat still streams from the replica that runs it


async def test_a_personal_chat_s_first_answer_keeps_its_follow_ups_when_another_replica_runs_it(
        split: list[TeamsHarness]) -> None:
    await split[0].post(personal(8, "first question"))
    answers = await split[0].until(lambda _: [c for c in shown(split[0], f"{PERSONAL}-8", "Answer to first question.")
                                              if "suggestedActions" in c.body], within=20)
    assert ran(split, "first question") == [1]
    assert 1 <= len(answers[-1].body["suggestedActions"]["actions"]) <= 3


async def test_typing_stop_on_one_replica_stops_the_turn_running_on_the_other(split: list[TeamsHarness]) -> None:
    await split[0].post(personal(1, "slow please"))
    await split[0].until(lambda _: any("Crunching" in (c.body.get("text") or "") for c in split[0].to(f"{PERSONAL}-1")),
                        within=20)
    began = split[0].connector.calls[-1].at
    await split[0].post(personal(1, "stop", id="1732180599999"))
    calls = await split[0].until(lambda _: shown(split[0], f"{PERSONAL}-1", "Stopped"), within=10)
    assert calls[-1].at - began < 3.0  # the flag is seen within 2 s, plus the message itself
    assert not shown(split[0], f"{PERSONAL}-1", "never shown")


async def test_the_stop_button_clicked_on_one_replica_stops_the_channel_turn_running_on_the_other(
        split: list[TeamsHarness]) -> None:
    owner = fixture("channel_new_post_mention")["from"]
    await split[0].post(fixture("channel_new_post_mention", text="<at>datathread</at> slow sums"))
    token, message_id = await split[0].until(lambda _: stop_token(split[0], CHANNEL_CHAIN), within=20)
    click = fixture("channel_reply_in_chain", id="1732181020999", text="", replyToId=message_id,
                    value={"datathread": "stop", "token": token}, **{"from": owner})
    assert (await split[0].post(click)).status in (200, 202)
    await split[0].until(lambda _: shown(split[0], CHANNEL_CHAIN, "Stopped"), within=10)
    assert ran(split, "slow sums") == [1]


async def test_feedback_given_on_one_replica_rates_the_turn_the_other_ran(split: list[TeamsHarness]) -> None:
    await split[0].post(personal(2, "how many rows?"))
    [final] = await split[0].until(lambda _: shown(split[0], f"{PERSONAL}-2", "Answer to how many rows?."), within=20)
    invoke = personal(2, None, type="invoke", id="inv-replica", replyToId=final.returned_id,
                      value={"actionName": "feedback", "actionValue": {
                          "reaction": "like", "feedback": '{"feedbackText": "spot on"}'}})
    invoke["name"] = "message/submitAction"
    assert (await split[0].post(invoke)).status == 200
    await split[0].until(lambda _: shown(split[0], f"{PERSONAL}-2", "Thanks for the feedback"), within=10)
    engine: Engine = split[0].engine
    [record] = await engine.state.feedback()
    thread = split[1].agent.turns[0].conversation.key
    assert (record.positive, record.comment) == (True, "spot on")
    assert record.turn == await engine.state.get_value(LAST_TURN, thread.digest)


async def test_a_dataset_card_made_on_one_replica_pages_when_clicked_on_the_other(split: list[TeamsHarness]) -> None:
    await split[0].post(personal(3, "a table please"))
    conversation = f"{PERSONAL}-3"

    call, card = await split[0].until(lambda _: first_page_card(split[0], conversation), within=20)
    nxt = next(a for a in card["actions"] if "Next" in a["title"])
    before = len(split[0].connector.calls)
    click = personal(3, "", id="1732182600001", replyToId=call.returned_id, value=nxt["data"])
    assert (await split[0].post(click)).status in (200, 202)  # to the replica that did not post the card
    updated = await split[0].until(lambda calls: [c for c in calls[before:]
                                                 if c.method == "PUT" and c.activity_id == call.returned_id])
    assert "rows 21–40 of 45" in str(updated[-1].body)


async def test_a_verdict_given_on_one_replica_on_an_older_answer_the_other_sent_rates_that_answer_s_turn(
        split: list[TeamsHarness]) -> None:
    conversation = f"{PERSONAL}-4"
    await split[0].post(personal(4, "first question"))
    [older] = await split[0].until(lambda _: shown(split[0], conversation, "Answer to first question."), within=20)
    await split[0].post(personal(4, "later question", id="1732180599004"))
    [newer] = await split[0].until(lambda _: shown(split[0], conversation, "Answer to later question."), within=20)
    # Replica 0 reads what replica 1 recorded when it sent each answer.
    older_turn = await turn_recorded(split[0], personal(4, None), older.returned_id)
    assert await turn_recorded(split[0], personal(4, None), newer.returned_id) != older_turn
    invoke = personal(4, None, type="invoke", id="inv-older", replyToId=older.returned_id,
                      value={"actionName": "feedback", "actionValue": {"reaction": "dislike", "feedback": "{}"}})
    invoke["name"] = "message/submitAction"
    assert (await split[0].post(invoke)).status == 200
    await split[0].until(lambda _: shown(split[0], conversation, "Thanks for the feedback"), within=10)
    [record] = await split[0].engine.state.feedback()
    latest = await split[1].engine.state.get_value(LAST_TURN, split[1].agent.turns[-1].conversation.key.digest)
    assert (record.turn, record.positive) == (older_turn, False)
    assert record.turn != latest  # not the thread's latest turn
    assert ran(split, "first question") == [1] and ran(split, "later question") == [1]


async def test_a_click_that_does_not_name_its_card_updates_the_card_the_other_replica_sent(
        split: list[TeamsHarness]) -> None:
    await split[0].post(personal(5, "a table please"))
    conversation = f"{PERSONAL}-5"

    call, card = await split[0].until(lambda _: first_page_card(split[0], conversation), within=20)
    nxt = next(a for a in card["actions"] if "Next" in a["title"])
    click = personal(5, "", id="1732182600005", value=nxt["data"])  # no replyToId: the click names no card
    assert await card_recorded(split[0], click, nxt["data"]["token"]) == call.returned_id
    before = len(split[0].connector.calls)
    assert (await split[0].post(click)).status in (200, 202)  # to the replica that did not post the card
    updated = await split[0].until(lambda calls: [c for c in calls[before:] if c.method == "PUT"
                                                 and c.activity_id == call.returned_id])
    assert "rows 21–40 of 45" in str(updated[-1].body)
    assert not [c for c in split[0].connector.calls[before:] if c.method == "POST" and "rows 21–40" in str(c.body)]


async def test_a_channel_file_link_made_on_one_replica_downloads_from_the_other(split: list[TeamsHarness]) -> None:
    await split[0].post(fixture("channel_new_post_mention", text="<at>datathread</at> the report"))
    [link] = await split[0].until(lambda _: [c.body["text"] for c in split[0].to(CHANNEL_CHAIN)
                                            if "📎 [report.pdf" in (c.body.get("text") or "")], within=20)
    path = link.split("](", 1)[1].split(")", 1)[0].removeprefix("http://files.example.test")
    got = await split[0].client.get(path)  # behind a load balancer, any replica serves the link
    assert got.status == 200 and await got.read() == PDF


async def test_a_file_attached_on_one_replica_reaches_the_agent_running_on_the_other(
        split: list[TeamsHarness]) -> None:
    split[0].connector.files["sales.csv"] = b"region,revenue\nEMEA,10\n"
    shared = fixture("personal_file_download_info")
    shared["attachments"][0]["content"]["downloadUrl"] = split[0].connector.file_url("sales.csv")
    await split[0].post(shared)
    await split[0].until(lambda _: shown(split[0], PERSONAL, "Got sales.csv: 'region,revenue\\nEMEA,10\\n'."),
                         within=20)
    assert [len(b.agent.turns) for b in split] == [0, 1]


async def test_a_teams_activity_is_claimed_and_queued_before_it_is_answered_so_a_killed_replica_loses_nothing(
        tmp_path: Path) -> None:
    async with teams_replicas(tmp_path, script, count=1, runners=()) as [intake_only]:
        for n in range(3):
            assert (await intake_only.post(personal(20 + n, f"q{n}"))).status == 202
            assert not queue_settled(intake_only)  # queued at the moment of the 202, not some time after it
