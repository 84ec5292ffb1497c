"""The real bolt app, served on a real aiohttp server, driven with signed Slack requests.

The Web API is the local fake (``tests/fakes/slack_api.py``); the agent is scripted.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import events as ev
from bot.conversation import Turn
from tests.engine_log import dropped_duplicates
from tests.fakes.scripted_agent import Raise, ScriptedAgent, Sleep, Step
from tests.fakes.slack_api import FakeSlack
from tests.slack_harness import SlackBot, mention, message, until

pytestmark = pytest.mark.e2e  # starts servers, kernels or subprocesses

CHANNEL = "C0CHAN"


def script(turn: Turn) -> list[Step]:
    if "crash" in turn.text:
        return [ev.Rationale("Trying. "), Raise(RuntimeError("kaboom"))]
    if "attached" in turn.text:
        names = ", ".join(f"{a.name}={a.size}" for a in turn.attachments)
        return [ev.FinalText(f"got {names}")]
    return [
        ev.Rationale("Looking at the data first. "),
        Sleep(0.3),
        ev.CodeStarted("df.describe()"),
        ev.CodeOutput("count 3\n"),
        Sleep(0.05),
        ev.CodeOutput("mean 2\n"),
        ev.FinalText(f"The answer to '{turn.text}' is **42**."),
    ]




@pytest.fixture
async def bot(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackBot]:
    b = await SlackBot(fake, tmp_path, ScriptedAgent(script)).start()
    yield b
    await b.stop()


def finished(fake: FakeSlack, thread_ts: str, n: int = 1) -> bool:
    """``n`` turns in the thread have ended (stopStream, or a final chat.update with the Files button)."""
    done = 0
    for m in fake.thread(CHANNEL, thread_ts):
        if not m.streaming and any("datathread:files" in str(b) for b in m.blocks):
            done += 1
    return done >= n


def help_answers(fake: FakeSlack, thread_ts: str) -> int:
    """How many answers to ``help`` the thread shows."""
    return sum("page N" in fake.shown(m) for m in fake.thread(CHANNEL, thread_ts))


def turn_text(fake: FakeSlack, thread_ts: str) -> str:
    return "\n".join(fake.shown(m) for m in fake.thread(CHANNEL, thread_ts))


async def test_mention_shows_status_progress_then_answer(bot: SlackBot, fake: FakeSlack) -> None:
    # A workspace without task chunks: the steps stream as text (tests/e2e/test_slack_steps.py: as tasks).
    fake.fail.no_task_chunks = True
    ts = "1700000000.000100"
    sent = time.monotonic()
    assert await bot.send(mention("how many rows?", ts), "Ev1") == 200
    await until(lambda: any(m.markdown for m in fake.thread(CHANNEL, ts)), what="first rationale")
    first_visible = min(c.at for c in fake.calls if c.method in ("chat.startStream", "chat.postMessage"))
    assert first_visible - sent < 1.0
    (live,) = fake.thread(CHANNEL, ts)
    assert "Looking at the data first." in live.markdown and "42" not in live.markdown
    await until(lambda: finished(fake, ts), what="turn end")
    assert "df.describe()" in live.markdown and "mean 2" in live.markdown and "**42**" in live.markdown
    statuses = [c.args.get("status") for c in fake.named("assistant.threads.setStatus")]
    assert statuses[0] and statuses[-1] == ""
    # 👀 on the user's message while the turn runs, in any channel; removed when it ends
    [added] = fake.named("reactions.add")
    [removed] = fake.named("reactions.remove")
    assert added.args["timestamp"] == removed.args["timestamp"] == ts and added.args["name"] == "eyes"
    assert added.at - sent < 1.0 and removed.at > added.at
    start = fake.named("chat.startStream")[0].args
    assert start["recipient_user_id"] == "UALICE" and start["recipient_team_id"] == "T0001"
    # follow-up without a mention continues the conversation in the same thread
    assert await bot.send(message("and the mean?", "1700000001.000001", thread_ts=ts), "Ev2") == 200
    await until(lambda: finished(fake, ts, 2), what="second turn")
    assert "The answer to 'and the mean?'" in turn_text(fake, ts)


async def test_mention_twin_and_retries_start_one_turn(bot: SlackBot, fake: FakeSlack, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.engine")
    ts = "1700000010.000100"
    assert await bot.send(mention("once", ts), "EvA") == 200
    assert await bot.send(mention("once", ts, kind="message"), "EvB") == 200
    assert await bot.send(mention("once", ts), "EvA", headers={"X-Slack-Retry-Num": "1",
                                                               "X-Slack-Retry-Reason": "http_timeout"}) == 200
    await until(lambda: finished(fake, ts), what="turn")
    await until(lambda: dropped_duplicates(caplog) == 2, what="the twin and the retry dropped")
    assert len(bot.agent.turns) == 1  # type: ignore[attr-defined]
    # a retry that arrives after a restart on the same home is still dropped
    await bot.stop()
    again = await SlackBot(fake, tmp_path, bot.agent).start()
    try:
        assert await again.send(mention("once", ts), "EvA", headers={"X-Slack-Retry-Num": "2"}) == 200
        await until(lambda: dropped_duplicates(caplog) == 3, what="the retry after the restart dropped")
        assert len(bot.agent.turns) == 1  # type: ignore[attr-defined]
    finally:
        await again.stop()


async def test_bad_and_stale_signatures_are_rejected(bot: SlackBot, fake: FakeSlack) -> None:
    ts = "1700000020.000100"
    # 401 is answered before the body is parsed: nothing reaches the engine.
    assert await bot.send(mention("x", ts), "Ev9", secret="wrong-secret") == 401
    assert await bot.send(mention("x", ts), "Ev9", timestamp=int(time.time()) - 600) == 401
    # A signed "help" in the same thread runs after anything queued there: once it is answered,
    # a request that slipped through would have had its turn.
    assert await bot.send(mention("help", "1700000020.000200", thread_ts=ts), "Ev10") == 200
    await until(lambda: help_answers(fake, ts) == 1, what="the help answer")
    assert not bot.agent.turns  # type: ignore[attr-defined]


async def test_direct_message_and_reply_in_its_thread(bot: SlackBot, fake: FakeSlack) -> None:
    ts = "1700000030.000100"
    assert await bot.send(message("hello", ts, channel="D0DM", channel_type="im"), "EvD1") == 200
    await until(lambda: any(not m.streaming and m.markdown for m in fake.thread("D0DM", ts)), what="dm answer")
    start = fake.named("chat.startStream")[0].args
    assert start["channel"] == "D0DM" and start["thread_ts"] == ts and "recipient_user_id" not in start
    assert await bot.send(message("more", "1700000031.000001", channel="D0DM", channel_type="im", thread_ts=ts),
                          "EvD2") == 200
    await until(lambda: len(bot.agent.turns) == 2, what="second dm turn")  # type: ignore[attr-defined]
    assert bot.agent.turns[1].conversation.id == bot.agent.turns[0].conversation.id  # type: ignore[attr-defined]


async def test_others_get_an_ephemeral_note_and_no_turn(bot: SlackBot, fake: FakeSlack) -> None:
    ts = "1700000040.000100"
    await bot.send(mention("mine", ts), "EvO1")
    await until(lambda: finished(fake, ts), what="owner turn")
    await bot.send(mention("me too", "1700000041.000001", user="UBOB", thread_ts=ts), "EvO2")
    await bot.send(message("just chatting", "1700000042.000001", user="UBOB", thread_ts=ts), "EvO3")
    await until(lambda: len(fake.ephemeral) == 1, what="ephemeral note")
    # The owner's "help" is queued behind Bob's messages in this thread: once it is answered,
    # Bob's messages have had their turn.
    await bot.send(message("help", "1700000043.000001", thread_ts=ts), "EvO4")
    await until(lambda: help_answers(fake, ts) == 1, what="the owner's help answer")
    assert len(fake.ephemeral) == 1
    assert fake.ephemeral[0]["user"] == "UBOB" and fake.ephemeral[0]["thread_ts"] == ts
    assert "belongs to" in str(fake.ephemeral[0]["blocks"])
    assert len(bot.agent.turns) == 1  # type: ignore[attr-defined]


async def test_failing_turn_says_so_clears_status_and_next_message_works(bot: SlackBot, fake: FakeSlack) -> None:
    ts = "1700000050.000100"
    await bot.send(mention("please crash", ts), "EvF1")
    await until(lambda: finished(fake, ts), what="failed turn end")
    assert "went wrong" in turn_text(fake, ts)
    assert fake.named("assistant.threads.setStatus")[-1].args["status"] == ""
    await bot.send(message("try again", "1700000051.000001", thread_ts=ts), "EvF2")
    await until(lambda: finished(fake, ts, 2), what="next turn")
    assert "The answer to 'try again'" in turn_text(fake, ts)


async def test_streaming_unavailable_falls_back_to_chat_update(bot: SlackBot, fake: FakeSlack) -> None:
    fake.fail.stream_start_error = "method_not_supported_for_channel_type"
    ts = "1700000060.000100"
    await bot.send(mention("no stream", ts), "EvS1")
    await until(lambda: finished(fake, ts), what="turn end")
    (msg,) = fake.thread(CHANNEL, ts)
    assert "*42*" in fake.shown(msg) and msg.updates >= 1
    updates = [c.at for c in fake.named("chat.update")]
    assert all(b - a >= 0.5 for a, b in itertools.pairwise(updates))


async def test_stream_expiring_mid_turn_falls_back_to_update(bot: SlackBot, fake: FakeSlack) -> None:
    fake.fail.stream_expires_after = 0
    ts = "1700000070.000100"
    await bot.send(mention("expire", ts), "EvX1")
    await until(lambda: finished(fake, ts), what="turn end")
    (msg,) = fake.thread(CHANNEL, ts)
    shown = fake.shown(msg)
    assert "Looking at the data first." in shown and "*42*" in shown and "mean 2" in shown


async def test_rate_limited_post_is_retried_without_duplicates(bot: SlackBot, fake: FakeSlack) -> None:
    fake.fail.rate_limited["chat.startStream"] = 1
    ts = "1700000080.000100"
    await bot.send(mention("limited", ts), "EvR1")
    await until(lambda: finished(fake, ts), limit=15, what="turn end")
    assert len(fake.named("chat.startStream")) == 2
    assert len(fake.thread(CHANNEL, ts)) == 1


async def test_many_threads_at_once(bot: SlackBot, fake: FakeSlack) -> None:
    threads = [f"17000001{i:02d}.000100" for i in range(20)]
    statuses = await asyncio.gather(*(bot.send(mention(f"q{i}", ts), f"EvM{i}") for i, ts in enumerate(threads)))
    assert set(statuses) == {200}
    await until(lambda: all(finished(fake, ts) for ts in threads), limit=20, what="all turns")
    for i, ts in enumerate(threads):
        assert f"'q{i}'" in turn_text(fake, ts)
        assert len(fake.thread(CHANNEL, ts)) == 1


async def test_slack_refusing_the_live_message_ends_with_a_short_note(bot: SlackBot, fake: FakeSlack) -> None:
    fake.fail.stream_start_error = "method_not_supported_for_channel_type"
    fake.fail.errors["chat.update"] = "msg_too_long"
    ts = "1700000090.000100"
    await bot.send(mention("too long for slack", ts), "EvL1")
    await until(lambda: any("would not show" in fake.shown(m) for m in fake.thread(CHANNEL, ts)), what="note")
    note = next(m for m in fake.thread(CHANNEL, ts) if "would not show" in fake.shown(m))
    assert "msg_too_long" in fake.shown(note) and "datathread:files" in str(note.blocks)
    assert fake.named("assistant.threads.setStatus")[-1].args["status"] == ""
    del fake.fail.errors["chat.update"]
    await bot.send(message("again", "1700000091.000001", thread_ts=ts), "EvL2")
    await until(lambda: "The answer to 'again'" in turn_text(fake, ts), what="next turn works")


async def test_turn_message_deleted_mid_turn_is_posted_again(bot: SlackBot, fake: FakeSlack) -> None:
    fake.fail.stream_start_error = "method_not_supported_for_channel_type"
    ts = "1700000095.000100"
    await bot.send(mention("delete me", ts), "EvG1")
    await until(lambda: bool(fake.thread(CHANNEL, ts)), what="turn message")
    (first,) = fake.thread(CHANNEL, ts)
    del fake.messages[(first.channel, first.ts)]  # someone deleted the bot's message
    await until(lambda: "*42*" in turn_text(fake, ts), what="answer in a new message")
    assert len(fake.thread(CHANNEL, ts)) == 1
