"""Small charts as Slack's ``data_visualization`` block, end to end, with the PNG fallback.

A Chart choice on a dataset page whose chart is a small aggregate (a bar of at most 20 groups)
posts a message Slack draws the chart in; nothing is uploaded. A workspace that answers
``invalid_blocks`` to that block gets the downsampled PNG instead, and later charts go straight to
the PNG. A larger aggregate is a PNG from the start. Through the real bolt app and the fake Web API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import events as ev
from bot.conversation import Turn
from tests.fakes.scripted_agent import ScriptedAgent, Step, WriteFile
from tests.fakes.slack_api import FakeSlack, Posted
from tests.slack_harness import SlackBot, mention, until

pytestmark = pytest.mark.e2e  # starts servers

CHANNEL = "C0CHAN"
REGIONS = ("north", "south", "<!channel> east", "west")
SMALL = ("region,amount\n" + "".join(f"{REGIONS[i % 4]},{i}\n" for i in range(12))).encode()
LARGE = ("region,amount\n" + "".join(f"r{i},{i}\n" for i in range(30))).encode()  # 30 groups


def script(turn: Turn) -> list[Step]:
    data = LARGE if "large" in turn.text else SMALL
    return [WriteFile("sales.csv", data), ev.FinalText("Here it is.")]


@pytest.fixture
async def bot(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackBot]:
    b = await SlackBot(fake, tmp_path, ScriptedAgent(script)).start()
    yield b
    await b.stop()


def in_thread(fake: FakeSlack, ts: str, block_type: str) -> Posted | None:
    return next((m for m in fake.thread(CHANNEL, ts) if any(b["type"] == block_type for b in m.blocks)), None)


async def choose_chart(bot: SlackBot, fake: FakeSlack, ts: str, text: str = "a table") -> None:
    """Ask for a dataset in a new thread, then choose its first Chart option (bar: region × amount)."""
    await bot.send(mention(text, ts), f"Ev{ts}")
    await until(lambda: in_thread(fake, ts, "data_table") is not None, what="the dataset page")
    page = in_thread(fake, ts, "data_table")
    assert page is not None
    select: dict[str, Any] = next(e for b in page.blocks if b["type"] == "actions" for e in b["elements"]
                                  if e.get("placeholder", {}).get("text") == "Chart")
    option = select["options"][0]
    assert option["text"]["text"] == "bar: region × amount"
    click = {"type": "static_select", "action_id": select["action_id"], "block_id": "b", "selected_option": option}
    assert await bot.click(click, user="UALICE", channel=CHANNEL, message_ts=page.ts, thread_ts=ts) == 200


def pngs(fake: FakeSlack, ts: str) -> list[str]:
    return [f.name for f in fake.shared(CHANNEL) if f.thread_ts == ts and f.name.endswith(".png")]


async def test_a_small_bar_chart_is_drawn_by_slack_and_no_png_is_uploaded(bot: SlackBot, fake: FakeSlack) -> None:
    ts = "1700000600.000100"
    await choose_chart(bot, fake, ts)
    await until(lambda: in_thread(fake, ts, "data_visualization") is not None, what="the native chart")
    m = in_thread(fake, ts, "data_visualization")
    assert m is not None
    [block] = [b for b in m.blocks if b["type"] == "data_visualization"]
    assert block["title"] == "sales: bar of amount by region"
    chart = block["chart"]
    assert chart["type"] == "bar" and chart["axis_config"]["x_label"] == "region"
    # sums per region, largest first; a region named like a mention is data, shown as written
    assert chart["series"][0]["data"] == [{"label": "west", "value": 21}, {"label": "<!channel> east", "value": 18},
                                          {"label": "south", "value": 15}, {"label": "north", "value": 12}]
    assert chart["axis_config"]["categories"] == ["west", "<!channel> east", "south", "north"]
    assert "<!channel>" not in m.text  # the notification text never mentions anyone
    assert pngs(fake, ts) == []


async def test_a_refused_chart_block_comes_as_the_png_and_later_charts_skip_the_attempt(
        bot: SlackBot, fake: FakeSlack) -> None:
    fake.fail.unknown_blocks = {"data_visualization"}
    ts = "1700000610.000100"
    await choose_chart(bot, fake, ts)
    await until(lambda: len(pngs(fake, ts)) == 1, what="the PNG instead")
    later = "1700000620.000100"
    await choose_chart(bot, fake, later)
    await until(lambda: len(pngs(fake, later)) == 1, what="the second chart's PNG")
    attempts = [c for c in fake.calls if c.method == "chat.postMessage" and "data_visualization" in str(c.args)]
    assert len(attempts) == 1  # refused once, then PNGs without asking again
    assert in_thread(fake, ts, "data_visualization") is None


async def test_a_bar_of_more_than_20_groups_stays_a_png(bot: SlackBot, fake: FakeSlack) -> None:
    ts = "1700000630.000100"
    await choose_chart(bot, fake, ts, "a large table")
    await until(lambda: len(pngs(fake, ts)) == 1, what="the PNG")
    assert not any("data_visualization" in str(c.args) for c in fake.calls)
