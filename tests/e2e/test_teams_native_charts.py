"""Small charts as Adaptive Card charts in Teams, end to end, with the PNG fallback.

Choosing a Chart option whose chart is a small aggregate (a bar of at most 20 groups) posts a card
with a ``Chart.VerticalBar`` Teams draws itself, its numbers as the fallback of clients that draw no
charts; nothing else is sent. A card the Bot Connector refuses (HTTP 400) brings the downsampled
PNG instead, and later charts go straight to the PNG. Through the real botbuilder CloudAdapter and
the fake Bot Connector.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.conversation import Turn
from tests.fakes.bot_connector import Call
from tests.fakes.scripted_agent import Step, WriteFile
from tests.teams_harness import TeamsHarness, fixture, teams

pytestmark = pytest.mark.e2e  # starts servers

REGIONS = ("north", "south", "*east*", "west")
CSV = ("region,amount\n" + "".join(f"{REGIONS[i % 4]},{i}\n" for i in range(12))).encode()
PERSONAL = fixture("personal_message")["conversation"]["id"]


def script(turn: Turn) -> list[Step]:
    return [WriteFile("sales.csv", CSV)]


def cards(calls: list[Call]) -> list[tuple[Call, dict[str, Any]]]:
    return [(c, a["content"]) for c in calls for a in c.body.get("attachments") or ()
            if a.get("contentType") == "application/vnd.microsoft.card.adaptive"]


def chart_cards(h: TeamsHarness) -> list[dict[str, Any]]:
    return [e for _, card in cards(h.to(PERSONAL)) for e in card.get("body", ()) if e["type"].startswith("Chart.")]


def images(h: TeamsHarness) -> list[str]:
    return [a.get("name", "") for c in h.to(PERSONAL) for a in c.body.get("attachments") or ()
            if str(a.get("contentType", "")).startswith("image/")]


async def choose_first_chart(h: TeamsHarness, n: int) -> None:
    """Ask for a dataset (message ``n``), then submit its Chart choice's first option."""
    await h.post(fixture("personal_message", id=f"17321804{n:05d}", text=f"a table {n}"))
    page = await h.until(lambda _: [(c, card) for c, card in cards(h.to(PERSONAL))
                                    if any(a["title"] == "Chart" for a in card.get("actions", ()))][n - 1:])
    call, card = page[0]
    chart = next(a for a in card["actions"] if a["title"] == "Chart")
    option = chart["card"]["body"][0]["choices"][0]
    assert option["title"] == "bar: region × amount"
    value = {"datathread": "chart", "datathread_choice": option["value"]}
    await h.post(fixture("card_submit_next", id=f"17321826{n:05d}", replyToId=call.returned_id, value=value))


async def test_a_small_bar_chart_is_a_card_chart_teams_draws_with_its_numbers_as_fallback(tmp_path: Path) -> None:
    async with teams(tmp_path, script) as h:
        await choose_first_chart(h, 1)
        [chart] = await h.until(lambda _: chart_cards(h))
        assert chart["type"] == "Chart.VerticalBar" and chart["title"] == "sales: bar of amount by region"
        assert chart["xAxisTitle"] == "region" and chart["yAxisTitle"] == "sum of amount"
        # sums per region, largest first; the data shows as written (no Markdown)
        assert chart["data"] == [{"x": "west", "y": 21.0}, {"x": "*east*", "y": 18.0},
                                 {"x": "south", "y": 15.0}, {"x": "north", "y": 12.0}]
        assert chart["fallback"]["type"] == "Table" and "*east*" in str(chart["fallback"])
        assert images(h) == []


async def test_a_refused_card_chart_comes_as_the_png_and_later_charts_skip_the_attempt(tmp_path: Path) -> None:
    async with teams(tmp_path, script) as h:
        h.connector.fail_next(400, None, code="BadArgument", message="Unknown element type",
                              when=lambda method, body: "Chart.VerticalBar" in str(body))
        await choose_first_chart(h, 1)
        await h.until(lambda _: len(images(h)) == 1)
        await choose_first_chart(h, 2)
        await h.until(lambda _: len(images(h)) == 2)
        assert h.connector.failed == [400] and chart_cards(h) == []  # refused once, then PNGs without asking
