"""Dataset pages as Slack's ``data_table``, end to end, with the fallbacks a workspace may need.

A page is one ``data_table`` (caption, header and the page's rows) with our Prev / Next / Sort /
Chart / Download controls under it. A workspace that answers ``invalid_blocks`` gets the ``table``
block, and one that knows neither gets fixed-width text, with the same controls; cells such as
``<!channel>`` or ``<@U123>`` never reach Slack as markup that could notify anyone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import events as ev
from bot.conversation import Turn
from tests.fakes.scripted_agent import ScriptedAgent, Step, WriteFile
from tests.fakes.slack_api import FakeSlack, Posted
from tests.slack_harness import SlackBot, mention, until

pytestmark = pytest.mark.e2e  # starts servers

CHANNEL = "C0CHAN"
CSV = ("id,who,amount\n" + "".join(f"{i},<!channel> &amp; <@U123> {i},{i * 1.5}\n" for i in range(45))).encode()
CONTROLS = ("datathread:page", "datathread:chart", "datathread:download")


def script(turn: Turn) -> list[Step]:
    return [ev.Rationale("Making a table. "), WriteFile("sales.csv", CSV), ev.FinalText("Here it is.")]




@pytest.fixture
async def bot(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackBot]:
    b = await SlackBot(fake, tmp_path, ScriptedAgent(script)).start()
    yield b
    await b.stop()


def page(fake: FakeSlack, ts: str) -> Posted | None:
    return next((m for m in fake.thread(CHANNEL, ts) if any("datathread:page" in str(b) for b in m.blocks)), None)


async def posted_page(bot: SlackBot, fake: FakeSlack, ts: str) -> Posted:
    await bot.send(mention("a table please", ts), f"Ev{ts}")
    await until(lambda: page(fake, ts) is not None, what="the dataset page")
    found = page(fake, ts)
    assert found is not None
    assert all(any(c in str(b) for b in found.blocks) for c in CONTROLS)  # our controls stay
    return found


async def test_a_page_is_a_data_table_with_a_caption_and_the_page_s_rows(bot: SlackBot, fake: FakeSlack) -> None:
    m = await posted_page(bot, fake, "1700000400.000100")
    [table] = [b for b in m.blocks if b["type"] == "data_table"]
    assert table["caption"].startswith("sales")
    assert [c["text"] for c in table["rows"][0]] == ["id", "who", "amount"]
    assert len(table["rows"]) == 21  # the header and a page of 20 rows
    assert table["rows"][1][1] == {"type": "raw_text", "text": "<!channel> &amp; <@U123> 0"}  # text, not markup


async def test_invalid_blocks_falls_back_to_the_table_block(bot: SlackBot, fake: FakeSlack) -> None:
    fake.fail.unknown_blocks = {"data_table"}
    m = await posted_page(bot, fake, "1700000410.000100")
    assert [b["type"] for b in m.blocks].count("table") == 1
    assert sum(c.method == "chat.postMessage" and "data_table" in str(c.args) for c in fake.calls) == 1


async def test_a_workspace_without_table_blocks_gets_fixed_width_text(bot: SlackBot, fake: FakeSlack) -> None:
    fake.fail.unknown_blocks = {"data_table", "table"}
    m = await posted_page(bot, fake, "1700000420.000100")
    assert not any(b["type"] in ("table", "data_table") for b in m.blocks)
    text = fake.shown(m)
    assert "&lt;!channel&gt; &amp;amp; &lt;@U123&gt; 0" in text and "<!channel>" not in text
