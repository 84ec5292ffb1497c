"""Item 5a of issue 17: one user's quick clicks cannot starve another user's turn (streaming off, so
every live update and click shares Slack's chat.update budget), and clicks beyond a fair share are
coalesced: only the last page requested is drawn."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import events as ev
from bot.conversation import Turn
from bot.intents import ShowPage, kind_of
from bot.messages import ThreadKey
from tests.fakes.scripted_agent import ScriptedAgent, Sleep, Step, WriteFile
from tests.fakes.slack_api import FakeSlack
from tests.slack_harness import SlackBot, mention, until

#: A dataset page's table: Slack's native data_table, or the table block it steps down to.
TABLE_BLOCKS = ("data_table", "table")

pytestmark = pytest.mark.e2e  # starts servers

CHANNEL = "C0CHAN"
ALICE, BOB = "1700005000.000100", "1700005001.000100"
CSV = ("id,amount\n" + "".join(f"{i},{i * 1.5}\n" for i in range(400))).encode()
CLICKS = 90


def script(turn: Turn) -> list[Step]:
    if "table" in turn.text:
        return [WriteFile("sales.csv", CSV), ev.FinalText("Here it is.")]
    return [ev.Rationale("Easy one. "), Sleep(2.0), ev.FinalText("The answer is 4.")]


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    f = await FakeSlack().start()
    f.fail.stream_start_error = "method_not_supported_for_channel_type"
    yield f
    await f.close()


@pytest.fixture
async def bot(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackBot]:
    b = await SlackBot(fake, tmp_path, ScriptedAgent(script)).start()
    yield b
    await b.stop()


def shown(fake: FakeSlack, ts: str) -> str:
    return "\n".join(fake.shown(m) for m in fake.thread(CHANNEL, ts))


async def test_ninety_quick_clicks_neither_hide_another_users_progress_nor_draw_every_page(
        bot: SlackBot, fake: FakeSlack) -> None:
    await bot.send(mention("make a table", ALICE), "EvAlice")
    await until(lambda: "datathread:files" in json.dumps([m.blocks for m in fake.thread(CHANNEL, ALICE)])
                and any(b["type"] in TABLE_BLOCKS for m in fake.thread(CHANNEL, ALICE) for b in m.blocks), what="table")
    page = next(m for m in fake.thread(CHANNEL, ALICE) if any(b["type"] in TABLE_BLOCKS for b in m.blocks))
    assert bot.engine is not None
    thread = ThreadKey("slack", "T0001", CHANNEL, ALICE)
    (meta,) = await bot.engine.datasets.list(thread)
    wanted = [1 + i % 19 for i in range(CLICKS - 1)] + [7]  # the last click asks for page 7
    for number in wanted:
        intent = ShowPage(meta.id, number)
        click = {"type": "button", "action_id": f"datathread:{kind_of(intent)}:0", "block_id": "b",
                 "value": bot.engine.seal(thread, intent)}
        assert await bot.click(click, user="UALICE", channel=CHANNEL, message_ts=page.ts, thread_ts=ALICE) == 200

    await bot.send(mention("a trivial question", BOB, user="UBOB"), "EvBob")
    await until(lambda: "Easy one" in shown(fake, BOB), what="Bob's first progress")
    assert "The answer is 4." not in shown(fake, BOB)  # his progress showed while he waited
    await until(lambda: "The answer is 4." in shown(fake, BOB), what="Bob's answer")

    await until(lambda: "rows 121–140 of 400" in fake.shown(page), what="the last page requested")
    drawn = [c for c in fake.named("chat.update") if c.args.get("ts") == page.ts]
    assert len(drawn) <= 10, f"{len(drawn)} redraws for {CLICKS} clicks"
