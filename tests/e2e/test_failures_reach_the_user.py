"""Item 4a of issue 17: every typed command and button ends with a visible message when Slack refuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import events as ev
from bot.conversation import Turn
from tests.fakes.scripted_agent import ScriptedAgent, Step, WriteFile
from tests.fakes.slack_api import FakeSlack
from tests.slack_harness import SlackBot, mention, until

pytestmark = pytest.mark.e2e  # starts servers

CHANNEL = "C0CHAN"
CSV = ("id,name,amount\n" + "".join(f"{i},name{i},{i * 1.5}\n" for i in range(45))).encode()


def script(turn: Turn) -> list[Step]:
    if "table" in turn.text:
        return [WriteFile("sales.csv", CSV), ev.FinalText("Here it is.")]
    return [ev.FinalText("ok")]


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    f = await FakeSlack().start()
    yield f
    await f.close()


@pytest.fixture
async def bot(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackBot]:
    b = await SlackBot(fake, tmp_path, ScriptedAgent(script)).start()
    yield b
    await b.stop()


async def table_thread(bot: SlackBot, fake: FakeSlack, ts: str) -> None:
    await bot.send(mention("make a table", ts), f"Ev{ts}")
    await until(lambda: any(b["type"] == "table" for m in fake.thread(CHANNEL, ts) for b in m.blocks)
                and any(not m.streaming and "Files" in str(m.blocks) for m in fake.thread(CHANNEL, ts)),
                what="turn end")


def said(fake: FakeSlack, ts: str, words: str) -> bool:
    return any(words in fake.shown(m) for m in fake.thread(CHANNEL, ts)) or any(
        words in str(e["blocks"]) for e in fake.ephemeral)


@pytest.mark.parametrize("command", ["download csv", "chart bar name amount"])
async def test_typed_command_whose_upload_slack_refuses_says_so_in_the_thread(
        bot: SlackBot, fake: FakeSlack, command: str) -> None:
    ts = "1700002000.000100"
    await table_thread(bot, fake, ts)
    fake.fail.errors["files.completeUploadExternal"] = "not_allowed_token_type"
    await bot.send(mention(command, "1700002001.000100", thread_ts=ts), "EvCmd")
    await until(lambda: said(fake, ts, "not_allowed_token_type"), what="a notice naming Slack's refusal")
