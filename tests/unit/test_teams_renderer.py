"""The Teams renderer's pure rules beyond those in ``tests/test_teams_render.py``: status lines, plain tables,
when a card is needed, and what a card's actions carry back to the adapter."""

from __future__ import annotations

import pytest

from bot.datasets.model import ChartData, ChartSeries
from bot.intents import ColumnOrder, ShowPage
from bot.reply import Button, Buttons, Chart, CodeBlock, Markdown, Notice, Option, Reply, Select, Status, Table
from renderers.teams import (
    ACTION_KEY,
    CHOICE_INPUT,
    MAX_CHOICES,
    card,
    needs_card,
    plain_table,
    status_line,
    teams_markdown,
)


@pytest.mark.parametrize(("status", "line"), [
    (Status("Working… 3.0 s", "working"), "⏳ _Working… 3.0 s_"),
    (Status("Done in 1.0 s", "done"), "✅ _Done in 1.0 s_"),
    (Status("Failed", "failed"), "❌ _Failed_"),
])
def test_status_lines_lead_with_their_state(status: Status, line: str) -> None:
    assert status_line(status) == line


def test_plain_tables_align_numbers_right_and_say_how_many_rows_are_left_out() -> None:
    table = Table(("city", "temp"), (("Oslo", "3.5"), ("Lima", "18"), ("Pune", "31.25")), (False, True))
    assert plain_table(table).splitlines() == ["city   temp", "Oslo    3.5", "Lima     18", "Pune  31.25"]
    assert plain_table(table, max_rows=1).splitlines()[-1] == "… 2 more rows"


def test_user_text_stays_literal_outside_code() -> None:
    assert teams_markdown("a <b>bold</b> claim") == "a &lt;b&gt;bold&lt;/b&gt; claim"
    assert teams_markdown("keep `<tag>` as code") == "keep `<tag>` as code"
    assert teams_markdown("```\n<html>\n```") == "```\n<html>\n```"
    assert teams_markdown("![chart](https://x/y.png)") == "[chart](https://x/y.png)"


def test_only_tables_and_buttons_need_a_card() -> None:
    assert not needs_card(Reply((Markdown("x"), CodeBlock("1"), Notice("n"))))
    assert needs_card(Reply((Markdown("x"), Table(("a",), (("1",),)))))
    assert needs_card(Reply((Buttons(()),)))


def test_card_buttons_submit_their_kind_and_token_and_selects_open_a_choice_list() -> None:
    options = tuple(Option(f"col {i}", ShowPage("ds", 1, ColumnOrder(i)), f"tok-{i}") for i in range(MAX_CHOICES + 5))
    reply = Reply((Markdown("**sales**"), Table(("a",), (("1",),)), Buttons((
        Button("Next ▶", ShowPage("ds", 2), "tok-next", "primary"),
        Select("Sort", options),
        Select("Chart", ()),  # nothing to choose: no action at all
    ))))
    built = card(reply)
    assert built["version"] == "1.5" and built["fallbackText"].startswith("**sales**")
    nxt, sort = built["actions"]
    assert nxt == {"type": "Action.Submit", "title": "Next ▶", "style": "positive",
                   "data": {ACTION_KEY: "page", "token": "tok-next"}}
    [choices] = sort["card"]["body"]
    assert choices["id"] == CHOICE_INPUT and choices["value"] == "tok-0"
    assert [c["value"] for c in choices["choices"]] == [f"tok-{i}" for i in range(MAX_CHOICES)]
    assert sort["card"]["actions"][0]["data"] == {ACTION_KEY: "page"}


def test_notices_in_a_card_are_coloured_by_level() -> None:
    built = card(Reply((Notice("fine"), Notice("careful", "warning"), Notice("broken", "error"),
                        Table(("a",), (("1",),)))))
    assert [b.get("color") for b in built["body"][:3]] == ["Default", "Warning", "Attention"]


def test_a_line_chart_is_a_chart_line_with_one_legend_per_series_and_the_table_as_fallback() -> None:
    data = ChartData("line", "visits: line of n by day", ("mon", "tue"), (ChartSeries("n", (3.0, 5.5)),), "day", "n")
    built = card(Reply((Chart(data),), "Chart"))
    [chart] = [e for e in built["body"] if e["type"].startswith("Chart.")]
    assert chart["type"] == "Chart.Line" and chart["xAxisTitle"] == "day"
    assert chart["data"] == [{"legend": "n", "values": [{"x": "mon", "y": 3.0}, {"x": "tue", "y": 5.5}]}]
    assert chart["fallback"]["type"] == "Table" and len(chart["fallback"]["rows"]) == 3  # header and 2 points
