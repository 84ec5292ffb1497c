"""Item 2a of issue 17: posting files cannot take the server down, and a thread gets at most
``DATATHREAD_MAX_POST_MB`` per file, with a notice naming what was held back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import events as ev
from bot.conversation import Turn
from tests.fakes.scripted_agent import ScriptedAgent, Step, WriteFile
from tests.fakes.slack_api import FakeSlack, Posted
from tests.slack_harness import SlackBot, mention, until

#: A dataset page's table: Slack's native data_table, or the table block it steps down to.
TABLE_BLOCKS = ("data_table", "table")

pytestmark = pytest.mark.e2e  # starts servers and a subprocess

ROOT = Path(__file__).resolve().parents[2]
CHANNEL = "C0CHAN"
CSV = ("id,amount\n" + "".join(f"{i},{i * 1.5}\n" for i in range(800))).encode()  # ~7 KB, over the limit


def test_posting_a_256_mib_file_grows_server_memory_by_less_than_64_mib() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "benchmarks.upload_memory", "--files", "1", "--size-mb", "256"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["growth_mb"] < 64, figures


def script(turn: Turn) -> list[Step]:
    if "table" in turn.text:
        return [WriteFile("sales.csv", CSV), ev.FinalText("Here it is.")]
    return [WriteFile("big.bin", b"x" * 5000), ev.FinalText("made it")]




@pytest.fixture
async def bot(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackBot]:
    b = await SlackBot(fake, tmp_path, ScriptedAgent(script), DATATHREAD_MAX_POST_MB="0.004").start()
    yield b
    await b.stop()


def held_back(fake: FakeSlack, ts: str) -> list[Posted]:
    return [m for m in fake.thread(CHANNEL, ts) if "a thread takes, so it was not posted" in fake.shown(m)]


def shown(fake: FakeSlack, ts: str) -> str:
    return "\n".join(fake.shown(m) for m in fake.thread(CHANNEL, ts))


async def test_file_over_the_post_limit_stays_in_the_workspace_and_the_turn_names_it(
        bot: SlackBot, fake: FakeSlack) -> None:
    ts = "1700003000.000100"
    await bot.send(mention("make a big file", ts), "EvBigFile")
    await until(lambda: "made it" in shown(fake, ts) and "big.bin" in shown(fake, ts), what="the turn's end")
    text = shown(fake, ts)
    assert "big.bin is 5.0 KB" in text and "`files`" in text
    assert fake.shared(CHANNEL) == [] and not fake.named("files.getUploadURLExternal")


async def test_typed_download_over_the_post_limit_says_why_in_the_thread(bot: SlackBot, fake: FakeSlack) -> None:
    ts = "1700003100.000100"
    await bot.send(mention("make a table", ts), "EvTable")
    await until(lambda: any(b["type"] in TABLE_BLOCKS for m in fake.thread(CHANNEL, ts) for b in m.blocks)
                and "a thread takes" in shown(fake, ts), what="dataset message and the turn's notice")
    uploads = len(fake.named("files.getUploadURLExternal"))
    await bot.send(mention("download csv", "1700003101.000100", thread_ts=ts), "EvDownload")
    # The turn's own sales.csv was held back with a notice; the export gets a second one.
    await until(lambda: len(held_back(fake, ts)) == 2, what="a notice")
    assert all("sales.csv is" in fake.shown(m) for m in held_back(fake, ts))
    assert len(fake.named("files.getUploadURLExternal")) == uploads
