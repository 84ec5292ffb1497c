"""First contact in the bot's Messages tab, through the real bolt app and the fake Web API."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.slack.fake_web_api import FakeSlack, Posted
from adapters.slack.harness import SlackBot, until
from bot.first_contact import DEFAULT_PROMPTS
from tests.fakes.scripted_agent import ScriptedAgent

pytestmark = pytest.mark.e2e  # starts servers


def opened(user: str, channel: str, tab: str = "messages") -> dict[str, object]:
    return {"type": "app_home_opened", "user": user, "channel": channel, "tab": tab, "event_ts": "1700000700.000100"}


def welcomes(fake: FakeSlack, channel: str) -> list[Posted]:
    return [m for m in fake.messages.values() if m.channel == channel and m.thread_ts is None]


async def test_opening_the_messages_tab_the_first_time_welcomes_once_with_the_suggested_prompts(
        tmp_path: Path) -> None:
    fake = await FakeSlack().start()
    bot = await SlackBot(fake, tmp_path, ScriptedAgent(lambda turn: [])).start()
    try:
        await bot.send(opened("UALICE", "D0ALICE"), "EvH1")
        await until(lambda: bool(welcomes(fake, "D0ALICE")), what="Alice's welcome")
        [welcome] = welcomes(fake, "D0ALICE")
        assert "attach a CSV" in welcome.text
        assert all(p.title in welcome.text for p in DEFAULT_PROMPTS)
        await bot.send(opened("UALICE", "D0ALICE"), "EvH2")  # she opens it again
        await bot.send(opened("UBOB", "D0BOB", tab="home"), "EvH3")  # the Home tab: not a first contact
        await bot.send(opened("UBOB", "D0BOB"), "EvH4")
        await until(lambda: bool(welcomes(fake, "D0BOB")), what="Bob's welcome")
        assert len(welcomes(fake, "D0ALICE")) == 1 and len(welcomes(fake, "D0BOB")) == 1
    finally:
        await bot.stop()
        await fake.close()
