"""Stop and feedback on Slack, end to end: the real bolt app against the fake Web API.

Stop arrives three ways (Slack's own Stop button of an agent session, our Stop button where the app
has no sessions, the typed word ``stop``); each ends the running turn within 2 s with what was shown
plus "Stopped", moves the thread's status out of working, and leaves the thread ready for the next
message. Only the owner may stop; a stop with nothing running says so. Feedback buttons under a
finished answer are recorded, a second click replacing the first.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import events as ev
from bot.actions import NOT_YOUR_TURN, NOTHING_RUNNING, THANKS
from bot.conversation import Turn
from bot.messages import ThreadKey
from tests.fakes.scripted_agent import ScriptedAgent, Sleep, Step
from tests.fakes.slack_api import FakeSlack, Posted
from tests.slack_harness import SlackBot, mention, message, until

pytestmark = pytest.mark.e2e  # starts servers

CHANNEL = "C0CHAN"
STOP_LIMIT = 2.0


def script(turn: Turn) -> list[Step]:
    if "slow" in turn.text:
        return [ev.Rationale("Reading the big file. "), ev.CodeStarted("load()"), Sleep(30),
                ev.FinalText("never shown")]
    return [ev.Rationale("Quick look. "), ev.FinalText(f"The answer to '{turn.text}' is **42**.")]


@pytest.fixture(params=[True, False], ids=["agent", "not-agent"])
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeSlack]:
    f = await FakeSlack(agent=request.param).start()
    yield f
    await f.close()


@pytest.fixture
async def bot(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackBot]:
    b = await SlackBot(fake, tmp_path, ScriptedAgent(script)).start()
    yield b
    await b.stop()


def live(fake: FakeSlack, ts: str) -> Posted:
    return fake.thread(CHANNEL, ts)[0]


def stopped(fake: FakeSlack, ts: str) -> bool:
    msgs = fake.thread(CHANNEL, ts)
    return bool(msgs) and not msgs[0].streaming and "Stopped" in fake.shown(msgs[0])


def status(fake: FakeSlack, ts: str) -> str | None:
    """What the thread shows as its working state: the agent session's status, else the assistant status."""
    if fake.agent:
        return fake.session(CHANNEL, ts)
    calls = [c for c in fake.named("assistant.threads.setStatus") if c.args.get("thread_ts") == ts]
    return calls[-1].args["status"] if calls else None


def element(fake: FakeSlack, ts: str, prefix: str) -> dict[str, Any]:
    for block in live(fake, ts).blocks:
        for el in block.get("elements") or ():
            if str(el.get("action_id", "")).startswith(prefix):
                return dict(el)
    raise AssertionError(f"no {prefix} control in the turn message")


async def start_slow_turn(bot: SlackBot, fake: FakeSlack, ts: str) -> None:
    await bot.send(mention("slow please", ts), f"Ev{ts}")
    await until(lambda: bool(fake.thread(CHANNEL, ts)) and "Reading the big file" in fake.shown(live(fake, ts)),
                what="the slow turn showing its first step")
    await until(lambda: status(fake, ts) not in (None, "", "active"), what="the working status")


async def stopped_within(fake: FakeSlack, ts: str) -> float:
    began = time.monotonic()
    await until(lambda: stopped(fake, ts), limit=10, what='"Stopped" in the turn message')
    return time.monotonic() - began


async def next_message_works(bot: SlackBot, fake: FakeSlack, ts: str) -> None:
    await bot.send(message("and now?", f"{ts[:-3]}999", thread_ts=ts), f"EvNext{ts}")
    await until(lambda: any("The answer to 'and now?'" in fake.shown(m) for m in fake.thread(CHANNEL, ts)),
                what="the next answer")


async def test_slack_s_own_stop_button_stops_the_turn_within_2_s(bot: SlackBot, fake: FakeSlack) -> None:
    if not fake.agent:
        pytest.skip("Slack shows its own Stop button only in agent sessions")
    ts = "1700000100.000100"
    await start_slow_turn(bot, fake, ts)
    assert fake.session(CHANNEL, ts) == "processing"
    assert not any("datathread:stop" in str(b) for b in live(fake, ts).blocks)  # Slack's button, not ours
    await bot.send({"type": "agent_session_stopped", "channel": CHANNEL, "thread_ts": ts, "user": "UALICE",
                    "streaming_message_ts": [live(fake, ts).ts], "event_ts": "1.0"}, "EvStop1")
    assert await stopped_within(fake, ts) <= STOP_LIMIT
    shown = fake.shown(live(fake, ts))
    assert "Reading the big file" in shown and "never shown" not in shown
    await until(lambda: fake.session(CHANNEL, ts) == "active", what="the session leaving processing")
    await next_message_works(bot, fake, ts)


async def test_our_stop_button_stops_the_turn_where_the_app_has_no_agent_sessions(
        bot: SlackBot, fake: FakeSlack) -> None:
    if fake.agent:
        pytest.skip("agent sessions use Slack's own Stop button")
    ts = "1700000110.000100"
    await start_slow_turn(bot, fake, ts)
    button = element(fake, ts, "datathread:stop")
    await bot.click(button, user="UALICE", channel=CHANNEL, message_ts=live(fake, ts).ts, thread_ts=ts)
    assert await stopped_within(fake, ts) <= STOP_LIMIT
    assert "datathread:stop" not in str(live(fake, ts).blocks)  # the end replaced our Stop button
    assert "datathread:files" in str(live(fake, ts).blocks)
    await until(lambda: status(fake, ts) == "", what="the assistant status cleared")
    await next_message_works(bot, fake, ts)


async def test_typing_stop_stops_the_turn_within_2_s(bot: SlackBot, fake: FakeSlack) -> None:
    ts = "1700000120.000100"
    await start_slow_turn(bot, fake, ts)
    await bot.send(message("stop", "1700000120.000200", thread_ts=ts), "EvTypedStop")
    assert await stopped_within(fake, ts) <= STOP_LIMIT
    await until(lambda: status(fake, ts) in ("", "active"), what="the status leaving working")
    await next_message_works(bot, fake, ts)


async def test_a_stop_by_someone_else_changes_nothing(bot: SlackBot, fake: FakeSlack) -> None:
    ts = "1700000130.000100"
    await start_slow_turn(bot, fake, ts)
    if fake.agent:
        await bot.send({"type": "agent_session_stopped", "channel": CHANNEL, "thread_ts": ts, "user": "UBOB"},
                       "EvStopBob")
    else:
        button = element(fake, ts, "datathread:stop")
        await bot.click(button, user="UBOB", channel=CHANNEL, message_ts=live(fake, ts).ts, thread_ts=ts)
    await until(lambda: any(e["user"] == "UBOB" for e in fake.ephemeral), what="the refusal")
    assert NOT_YOUR_TURN in str([e["blocks"] for e in fake.ephemeral if e["user"] == "UBOB"])
    assert bot.engine is not None and bot.engine.running(ThreadKey("slack", "T0001", CHANNEL, ts))
    assert live(fake, ts).streaming and "Stopped" not in fake.shown(live(fake, ts))
    assert status(fake, ts) not in ("", "active")
    await bot.send(message("stop", "1700000130.000200", thread_ts=ts), "EvStopAlice")
    assert await stopped_within(fake, ts) <= STOP_LIMIT


async def test_a_stop_with_nothing_running_says_so_and_clears_the_status(bot: SlackBot, fake: FakeSlack) -> None:
    ts = "1700000140.000100"
    await bot.send(mention("quick", ts), "EvQuick")
    await until(lambda: any("**42**" in fake.shown(m) or "*42*" in fake.shown(m) for m in fake.thread(CHANNEL, ts))
                and not live(fake, ts).streaming, what="the answer")
    if fake.agent:
        await bot.send({"type": "agent_session_stopped", "channel": CHANNEL, "thread_ts": ts, "user": "UALICE"},
                       "EvLateStop")
        await until(lambda: bool(fake.ephemeral), what="the notice")
        assert NOTHING_RUNNING in str(fake.ephemeral[-1]["blocks"])
        assert fake.session(CHANNEL, ts) == "active"
    else:
        await bot.send(message("stop", "1700000140.000200", thread_ts=ts), "EvLateStop")
        await until(lambda: any(NOTHING_RUNNING in fake.shown(m) for m in fake.thread(CHANNEL, ts)),
                    what="the notice")


async def test_feedback_buttons_record_a_verdict_and_a_second_click_replaces_it(
        bot: SlackBot, fake: FakeSlack) -> None:
    ts = "1700000150.000100"
    await bot.send(mention("quick", ts), "EvFb")
    await until(lambda: bool(fake.thread(CHANNEL, ts)) and not live(fake, ts).streaming
                and "feedback_buttons" in str(live(fake, ts).blocks), what="the answer with feedback buttons")
    buttons = element(fake, ts, "datathread:feedback")
    assert buttons["type"] == "feedback_buttons"
    for which in ("positive_button", "negative_button"):
        click = {"type": "feedback_buttons", "action_id": buttons["action_id"], "value": buttons[which]["value"]}
        await bot.click(click, user="UALICE", channel=CHANNEL, message_ts=live(fake, ts).ts, thread_ts=ts)
        await until(lambda n=which: sum(THANKS in str(e["blocks"]) for e in fake.ephemeral)
                    == (1 if n == "positive_button" else 2), what="the thanks")
    assert bot.engine is not None
    [record] = await bot.engine.state.feedback()
    assert (record.user, record.positive, record.platform) == ("UALICE", False, "slack")
    assert record.turn and record.conversation


async def test_a_direct_message_gets_an_answer_in_an_agent_session_with_a_title(bot: SlackBot, fake: FakeSlack) -> None:
    ts, dm = "1700000160.000100", "D0DIRECT"
    await bot.send(message("quick question about sales", ts, channel=dm, channel_type="im"), "EvDm")
    await until(lambda: any("The answer to 'quick question about sales'" in fake.shown(m)
                            for m in fake.thread(dm, ts)) and not fake.thread(dm, ts)[0].streaming, what="the answer")
    if fake.agent:
        assert fake.sessions[(dm, ts)] == ["processing", "active"]
        [first] = [c for c in fake.named("agents.sessions.setStatus") if c.args["status"] == "processing"]
        assert first.args["title"] == "quick question about sales"
    else:
        [titled] = fake.named("assistant.threads.setTitle")
        assert titled.args["title"] == "quick question about sales"


async def test_a_new_assistant_thread_is_offered_the_suggested_prompts(bot: SlackBot, fake: FakeSlack) -> None:
    await bot.send({"type": "assistant_thread_started", "assistant_thread": {
        "user_id": "UALICE", "channel_id": "D0DIRECT", "thread_ts": "1700000170.000100"}}, "EvStarted")
    await until(lambda: bool(fake.named("assistant.threads.setSuggestedPrompts")), what="the prompts")
    [offered] = fake.named("assistant.threads.setSuggestedPrompts")
    prompts = offered.args["prompts"]
    assert 1 <= len(prompts) <= 4 and all(p["title"] and p["message"] for p in prompts)
    assert offered.args["thread_ts"] == "1700000170.000100"
