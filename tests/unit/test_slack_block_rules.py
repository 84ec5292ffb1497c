"""What we render for Slack's newer blocks keeps the limits Slack documents, as the fake Web API
checks them (``adapters/slack/fake_block_rules.py``), and the fake refuses what breaks them."""

from __future__ import annotations

from adapters.slack.fake_block_rules import block_errors
from bot.datasets.model import ChartData, ChartSeries
from bot.reply import Chart, Reply, Table
from renderers.slack import render


def test_rendered_charts_at_the_edges_of_slack_s_limits_pass_its_rules() -> None:
    labels = tuple(f"a category label longer than twenty characters {i}" for i in range(20))
    chart = Chart(ChartData("bar", "t" * 90, labels, (ChartSeries("s" * 40, tuple(float(i) for i in range(20))),),
                            "x" * 70, "y" * 70))
    messages = render(Reply((chart, chart, chart)))
    assert [block_errors(list(m.blocks)) for m in messages] == [[], []]


def test_a_rendered_data_table_page_passes_slack_s_rules() -> None:
    table = Table(("id", "who", "amount"), tuple((str(i), f"<!channel> {i}", f"{i * 1.5:,}") for i in range(100)),
                  (True, False, True))
    [m] = render(Reply((table,), "sales: rows 1–100"), tables="data_table")
    assert [b["type"] for b in m.blocks] == ["data_table"] and block_errors(list(m.blocks)) == []


def test_the_fake_refuses_what_slack_documents_it_refuses() -> None:
    table = {"type": "data_table", "caption": "c", "column_settings": [],
             "rows": [[{"type": "raw_text", "text": "a"}], [{"type": "raw_text", "text": ""}]]}
    chart = {"type": "data_visualization", "title": "t", "chart": {
        "type": "bar", "axis_config": {"categories": ["a"]},
        "series": [{"name": "s", "data": [{"label": "b", "value": 1}]}]}}
    pie = {"type": "data_visualization", "title": "t",
           "chart": {"type": "pie", "segments": [{"label": "a", "value": 0}]}}
    errors = block_errors([table, chart, pie])
    assert any("column_settings" in e for e in errors) and any("bad cell" in e for e in errors)
    assert any("bad point" in e for e in errors) and any("bad segment" in e for e in errors)
    assert block_errors([pie | {"chart": {"type": "pie", "segments": [{"label": "a", "value": 2}]}}] * 3) == [
        "more than 2 data_visualization blocks in one message"]
