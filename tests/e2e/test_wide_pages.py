"""Item 5b of issue 17: a dataset page too wide for one message is paged through its columns, so a
click redraws exactly one message (3,001 columns used to be 4 messages, 3 re-posted per click)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from bot import events as ev
from bot.conversation import Turn
from tests.fakes.scripted_agent import ScriptedAgent, Step, WriteFile
from tests.fakes.slack_api import FakeSlack, Posted
from tests.slack_harness import SlackBot, mention, until

#: A dataset page's table: Slack's native data_table, or the table block it steps down to.
TABLE_BLOCKS = ("data_table", "table")

pytestmark = pytest.mark.e2e  # starts servers

CHANNEL = "C0CHAN"
TS = "1700004000.000100"
COLUMNS = 3001
WIDE = (",".join(f"c{i}" for i in range(COLUMNS)) + "\n" + "".join(
    ",".join(str(r * COLUMNS + i) for i in range(COLUMNS)) + "\n" for r in range(90))).encode()


def script(turn: Turn) -> list[Step]:
    return [WriteFile("wide.csv", WIDE), ev.FinalText("Here it is.")]




@pytest.fixture
async def bot(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackBot]:
    b = await SlackBot(fake, tmp_path, ScriptedAgent(script), DATATHREAD_MAX_POST_MB="0.001").start()
    yield b
    await b.stop()


def page_messages(fake: FakeSlack) -> list[Posted]:
    return [m for m in fake.thread(CHANNEL, TS) if "rows " in fake.shown(m) and " of 90" in fake.shown(m)]


def button(m: Posted, label: str) -> dict[str, Any]:
    for b in m.blocks:
        for e in b.get("elements", ()) if b["type"] == "actions" else ():
            if label in (e.get("text") or {}).get("text", ""):
                return {"type": "button", "action_id": e["action_id"], "block_id": "b", "value": e["value"]}
    raise AssertionError(f"no {label} button")


def header(m: Posted) -> list[str]:
    (table,) = [b for b in m.blocks if b["type"] in TABLE_BLOCKS]
    return [c["text"] for c in table["rows"][0]]


async def click(bot: SlackBot, m: Posted, label: str) -> None:
    before = m.updates
    await bot.click(button(m, label), user="UALICE", channel=CHANNEL, message_ts=m.ts, thread_ts=TS)
    await until(partial(lambda m, b: m.updates > b, m, before), what=f"{label} drawn")


async def test_three_next_clicks_on_a_3001_column_dataset_leave_exactly_one_page_message(
        bot: SlackBot, fake: FakeSlack) -> None:
    await bot.send(mention("make a wide table", TS), "EvWide")
    await until(lambda: len(page_messages(fake)) >= 1, limit=30, what="the dataset page")
    (m,) = page_messages(fake)
    assert "columns 1–20 of 3,001" in fake.shown(m) and header(m) == [f"c{i}" for i in range(20)]
    for _ in range(3):
        await click(bot, m, "Next")
    assert page_messages(fake) == [m] and "rows 61–80 of 90" in fake.shown(m)
    await click(bot, m, "Columns ▶")
    assert header(m) == [f"c{i}" for i in range(20, 40)] and "rows 61–80 of 90" in fake.shown(m)
    (table,) = [b for b in m.blocks if b["type"] in TABLE_BLOCKS]
    assert table["rows"][1][0]["text"] == str(60 * COLUMNS + 20)
    await click(bot, m, "◀ Columns")
    assert header(m)[0] == "c0" and page_messages(fake) == [m]
