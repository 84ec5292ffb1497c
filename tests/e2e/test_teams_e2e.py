"""Teams end to end: the real CloudAdapter on /api/messages, driven with recorded activities,
sending through the real ConnectorClient to a fake Bot Connector."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from bot import events as ev
from bot.conversation import Turn
from tests.engine_log import dropped_duplicates
from tests.fakes.scripted_agent import Sleep
from tests.teams_harness import fixture, teams

pytestmark = pytest.mark.e2e  # starts servers, kernels or subprocesses

PERSONAL = "a:1Pz8Y2personalchatid-Ada"
CHANNEL_CHAIN = "19:4c1d3a2f9b8e4d7c@thread.tacv2;messageid=1732180811554"
GROUP = "19:meeting_groupchat7d6e5f@thread.v2"


def answer(text: str, delay: float = 0.0) -> Any:
    def script(turn: Turn) -> list[Any]:
        return [ev.Rationale("Looking at the data. "), Sleep(delay), ev.FinalText(f"{text} ({turn.text})")]
    return script


def texts(calls: list[Any]) -> list[str]:
    return [c.body.get("text") or "" for c in calls]


async def test_channel_mention_shows_progress_then_the_answer_in_the_reply_chain(tmp_path: Path) -> None:
    async with teams(tmp_path, answer("EMEA grew fastest", delay=2.0)) as h:
        started = time.monotonic()
        response = await h.post(fixture("channel_new_post_mention"))
        assert response.status in (200, 201, 202)
        assert time.monotonic() - started < 1.0  # answered before the turn ran
        first = await h.until(lambda calls: calls, within=2.0)
        assert time.monotonic() - started < 2.0
        assert "Working" in first[0].body["text"]
        calls = await h.turn_done(CHANNEL_CHAIN)
        assert all(c.conversation for c in calls)
        posts = [c for c in calls if c.method == "POST"]
        assert len(posts) == 1, texts(posts)  # one message, updated in place
        final = [c for c in calls if c.method == "PUT"][-1]
        assert final.activity_id == posts[0].returned_id
        assert "EMEA grew fastest (which region grew fastest & why?)" in final.body["text"]
        assert "✅" in final.body["text"]
        assert h.agent.turns[0].conversation.key.thread == "1732180811554"


async def test_personal_chat_streams_with_increasing_sequence_and_a_final_message(tmp_path: Path) -> None:
    def script(turn: Turn) -> list[Any]:
        return [ev.Rationale("First I load the file. "), Sleep(1.6), ev.Rationale("Then I group by region. "),
                Sleep(1.6), ev.FinalText("EMEA leads.")]

    async with teams(tmp_path, script) as h:
        started = time.monotonic()
        await h.post(fixture("personal_message"))
        first = await h.until(lambda calls: calls, within=2.0)
        assert time.monotonic() - started < 2.0
        calls = await h.turn_done(PERSONAL)
        typing = [c for c in calls if c.body["type"] == "typing" and c.body.get("entities")]
        infos = [e for c in typing for e in c.body["entities"] if e["type"] == "streaminfo"]
        assert infos[0]["streamType"] == "informative" and infos[0]["streamSequence"] == 1
        assert first[0].body["text"]  # readable, not just a typing indicator
        sequences = [i["streamSequence"] for i in infos]
        assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences) and len(sequences) >= 3
        stream_id = first[0].returned_id
        assert all(i["streamId"] == stream_id for i in infos[1:])
        streamed = [c.body["text"] for c, i in zip(typing, infos, strict=True) if i["streamType"] == "streaming"]
        assert streamed and all(b.startswith(a) for a, b in itertools.pairwise(streamed))
        final = [c for c in calls if c.body["type"] == "message"][-1]
        assert {"type": "streaminfo", "streamType": "final", "streamId": stream_id} in final.body["entities"]
        assert "EMEA leads." in final.body["text"] and "✅" in final.body["text"]
        assert not [c for c in calls if c.method == "PUT"]


async def test_follow_ups_continue_the_chain_and_group_chats_answer_in_the_chat(tmp_path: Path) -> None:
    async with teams(tmp_path, answer("ok")) as h:
        await h.post(fixture("channel_new_post_mention"))
        await h.turn_done(CHANNEL_CHAIN)
        before = len(h.to(CHANNEL_CHAIN))
        await h.post(fixture("channel_reply_in_chain"))
        await h.until(lambda _: any("(now only for EMEA)" in t for t in texts(h.to(CHANNEL_CHAIN)[before:])))
        assert h.agent.turns[0].conversation.id == h.agent.turns[1].conversation.id
        await h.post(fixture("group_chat_mention"))
        calls = await h.until(lambda _: [t for t in texts(h.to(GROUP)) if "(chart weekly signups)" in t])
        assert calls and h.agent.turns[2].conversation.id != h.agent.turns[0].conversation.id


async def test_redelivered_activities_start_one_turn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.engine")
    async with teams(tmp_path, answer("once", delay=0.3)) as h:
        activity = fixture("personal_message")
        responses = await asyncio.gather(*(h.post(activity) for _ in range(3)))
        assert all(r.status < 300 for r in responses)
        await h.turn_done(PERSONAL)
        await h.until(lambda _: dropped_duplicates(caplog) == 2)
        assert len(h.agent.turns) == 1
        finals = [c for c in h.to(PERSONAL) if c.body["type"] == "message" and "once" in (c.body.get("text") or "")]
        assert len(finals) == 1


async def test_a_throttled_send_is_retried_without_duplicates(tmp_path: Path) -> None:
    async with teams(tmp_path, answer("after the retry")) as h:
        h.connector.fail_next(429, retry_after=0.1)
        h.connector.fail_next(502, retry_after=None)
        await h.post(fixture("group_chat_mention"))
        calls = await h.turn_done(GROUP)
        assert h.connector.failed == [429, 502]
        posts = [c for c in calls if c.method == "POST" and c.body["type"] == "message"]
        assert len(posts) == 1
        assert "after the retry" in [c for c in calls if c.method == "PUT"][-1].body["text"]


async def test_a_failing_turn_ends_with_a_short_explanation(tmp_path: Path) -> None:
    from tests.fakes.scripted_agent import Raise

    async with teams(tmp_path, lambda turn: [ev.Rationale("Trying. "), Raise(RuntimeError("boom"))]) as h:
        await h.post(fixture("channel_new_post_mention"))
        calls = await h.turn_done(CHANNEL_CHAIN)
        final = calls[-1].body["text"]
        assert "❌" in final and "Send your message again" in final and "boom" not in final


async def test_several_chats_run_at_once(tmp_path: Path) -> None:
    async with teams(tmp_path, answer("done", delay=1.0)) as h:
        started = time.monotonic()
        await asyncio.gather(h.post(fixture("personal_message")), h.post(fixture("channel_new_post_mention")),
                             h.post(fixture("group_chat_mention")))
        for conversation in (PERSONAL, CHANNEL_CHAIN, GROUP):
            await h.turn_done(conversation)
        assert time.monotonic() - started < 2.8  # concurrently, not one after another
        assert {t.conversation.key.channel for t in h.agent.turns} == {
            PERSONAL, "19:4c1d3a2f9b8e4d7c@thread.tacv2", GROUP}


async def test_someone_else_in_the_chain_gets_a_mentioned_note(tmp_path: Path) -> None:
    async with teams(tmp_path, answer("mine")) as h:
        await h.post(fixture("channel_new_post_mention"))
        await h.turn_done(CHANNEL_CHAIN)
        intruder = fixture("channel_reply_in_chain", id="1732181999999")
        intruder["from"] = {"id": "29:1Alan-Turing-id", "name": "Alan Turing"}
        await h.post(intruder)
        note = await h.until(lambda _: [c for c in h.to(CHANNEL_CHAIN) if "belongs to" in (c.body.get("text") or "")])
        assert note[0].body["text"].startswith("<at>Alan Turing</at>")
        assert {"type": "mention", "mentioned": {"id": "29:1Alan-Turing-id", "name": "Alan Turing"},
                "text": "<at>Alan Turing</at>"} in note[0].body["entities"]
        assert len(h.agent.turns) == 1


async def test_credentials_make_authentication_required(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = {"MICROSOFT_APP_ID": "1b2c3d4e-0000-4000-8000-00000000b07a", "MICROSOFT_APP_PASSWORD": "not-a-secret",
           "MICROSOFT_APP_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47", "MICROSOFT_APP_TYPE": "SingleTenant"}
    async with teams(tmp_path, answer("never"), env=env) as h:
        assert (await h.post(fixture("personal_message"))).status == 401
        forged = await h.post(fixture("personal_message", id="2"), headers={"Authorization": "Bearer not.a.jwt"})
        assert forged.status == 401
        # The 401 is answered when authentication fails, before the activity reaches the bot's
        # logic (which is where a turn would be queued): there is nothing later to wait for.
        rejected = [r for r in caplog.records if r.getMessage().startswith("rejected a Bot Framework request")]
        assert len(rejected) == 2
        assert h.connector.calls == [] and h.agent.turns == []
