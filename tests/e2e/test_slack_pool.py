"""Slack Web API calls share warm connections (one pooled keep-alive session), and still time out."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot import events as ev
from bot.conversation import Turn
from tests.fakes.scripted_agent import ScriptedAgent, Sleep, Step
from tests.fakes.slack_api import FakeSlack
from tests.slack_harness import SlackBot, mention, until

pytestmark = pytest.mark.e2e  # a local HTTP fake of the Slack Web API

CHANNEL = "C0POOL"


def script(turn: Turn) -> list[Step]:
    return [ev.Rationale("Looking. "), Sleep(0.05), ev.CodeStarted("1 + 1"), Sleep(0.05), ev.CodeOutput("2\n"),
            Sleep(0.05), ev.FinalText("It is 2.")]


async def test_web_api_calls_of_many_threads_reuse_a_few_connections(tmp_path: Path) -> None:
    fake = await FakeSlack().start()
    bot = await SlackBot(fake, tmp_path, ScriptedAgent(script)).start()
    try:
        stamps = [f"17200{i:05d}.000100" for i in range(10)]
        await asyncio.gather(*(bot.send(mention(f"q {i}", ts, channel=CHANNEL), f"EvP{i}")
                               for i, ts in enumerate(stamps)))
        await until(lambda: len(bot.agent.turns) == len(stamps) and bot.engine is not None and bot.engine.idle,
                    what="all turns")
        calls = [c for c in fake.calls if c.peer is not None]
        assert len(calls) >= 5 * len(stamps)
        assert len({c.peer for c in calls}) <= len(calls) / 3  # a new connection per call would be one each
    finally:
        await bot.stop()
        await fake.close()
