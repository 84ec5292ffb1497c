"""Reply -> Slack blocks: Markdown -> mrkdwn traps, limits, tables, buttons, long text."""

from __future__ import annotations

import pytest

from bot.datasets.model import ChartData, ChartSeries
from bot.intents import ColumnOrder, Download, DrawChart, ShowPage
from bot.reply import Button, Buttons, Chart, CodeBlock, Markdown, Notice, Option, Reply, Select, Status, Table
from renderers.markdown import reply_to_markdown, split_text, utf8_len
from renderers.slack import (
    BUTTON_TEXT,
    CONTEXT_TEXT,
    FALLBACK_TEXT,
    MAX_BLOCKS,
    OPTION_VALUE,
    SECTION_TEXT,
    TABLE_COLUMNS,
    data_table_block,
    markdown_to_mrkdwn,
    render,
)


@pytest.mark.parametrize(
    ("md", "expected"),
    [
        ("**bold**", "*bold*"),
        ("__bold__", "*bold*"),
        ("*it*", "_it_"),
        ("_it_", "_it_"),
        ("***both***", "*_both_*"),
        ("**bold** and *it*", "*bold* and _it_"),
        ("~~gone~~", "~gone~"),
        ("[docs](https://x.io/a_b?c=1&d=2)", "<https://x.io/a_b?c=1&amp;d=2|docs>"),
        ("<https://x.io>", "<https://x.io>"),
        ("# Title", "*Title*"),
        ("## **Sub** ##", "*Sub*"),
        ("- one\n- two", "• one\n• two"),
        ("* one\n  * nested", "• one\n  • nested"),
        ("2 * 3 * 4", "2 * 3 * 4"),
        ("a*b*c", "a*b*c"),
        ("x < y & z > w", "x &lt; y &amp; z &gt; w"),
        ("use `a**b**c < d`", "use `a**b**c &lt; d`"),  # code keeps its text; Slack shows &lt; as <
        ("```python\nx = a**2 < 3 and [l](u)\n```", "```\nx = a**2 &lt; 3 and [l](u)\n```"),
        ("`<!channel>` ping", "`&lt;!channel&gt;` ping"),  # never a live @channel from code
        ("```\nunclosed **x**", "```\nunclosed **x**"),
        ("snake_case_name", "snake_case_name"),
        ("---", "──────────"),
    ],
)
def test_markdown_to_mrkdwn(md: str, expected: str) -> None:
    assert markdown_to_mrkdwn(md) == expected


def test_split_text_loses_nothing_and_respects_the_limit() -> None:
    text = "\n".join(f"line {i} " + "é" * (i % 50) + "😀" for i in range(400))
    pieces = split_text(text, 1000)
    assert all(len(p) <= 1000 for p in pieces)
    assert "".join(pieces) == text
    one_long_word = "x" * 5000
    assert "".join(split_text(one_long_word, 3000)) == one_long_word


def test_split_text_closes_and_reopens_fences() -> None:
    code = "```python\n" + "\n".join(f"print({i})" for i in range(600)) + "\n```"
    pieces = split_text(code, 1000)
    assert len(pieces) > 3
    for p in pieces:
        assert len(p) <= 1000
        assert p.count("```") % 2 == 0, p[:40]
    body = "".join(p.removeprefix("```python\n").removesuffix("```") for p in pieces)
    assert all(f"print({i})" in body for i in range(600))


def _texts(messages: list) -> str:
    out = []
    for m in messages:
        for b in m.blocks:
            if b["type"] == "section":
                out.append(b["text"]["text"])
    return "".join(out)


def test_long_reply_splits_into_valid_messages_without_loss() -> None:
    words = " ".join(f"w{i}" for i in range(30_000))
    reply = Reply((Markdown(words), *(CodeBlock(f"x = {i}") for i in range(80))))
    messages = render(reply, nonce="n")
    assert len(messages) > 1
    for m in messages:
        assert len(m.blocks) <= MAX_BLOCKS
        for b in m.blocks:
            if b["type"] == "section":
                assert len(b["text"]["text"]) <= SECTION_TEXT
        ids = [b["block_id"] for b in m.blocks]
        assert len(set(ids)) == len(ids)
    text = _texts(messages)
    prose = text[: text.index("```")]
    assert prose == words
    assert all(f"x = {i}\n" in text for i in range(80))


def test_fresh_block_ids_each_render() -> None:
    reply = Reply((Markdown("a"),))
    assert render(reply)[0].blocks[0]["block_id"] != render(reply)[0].blocks[0]["block_id"]


def test_table_block_shape_and_limits() -> None:
    table = Table(("name", "amount"), tuple((f"n{i}", str(i)) for i in range(150)), (False, True))
    (m,) = render(Reply((table,)), nonce="t")
    block = m.blocks[0]
    assert block["type"] == "table"
    assert block["rows"][0] == [{"type": "raw_text", "text": "name"}, {"type": "raw_text", "text": "amount"}]
    assert len(block["rows"]) == 100
    assert block["column_settings"][1] == {"align": "right"}
    # rows past the table block's 99 follow as fixed-width text: none of the page is lost
    assert "Rows 100–150" in m.blocks[1]["elements"][0]["text"]
    rest = "".join(b["text"]["text"] for b in m.blocks[2:])
    assert all(f"n{i} " in rest for i in range(99, 150)) and "n98 " not in rest


def test_wide_table_falls_back_to_fixed_width_text() -> None:
    cols = tuple(f"c{i}" for i in range(25))
    (m,) = render(Reply((Table(cols, (tuple(str(i) for i in range(25)),)),)))
    assert all(b["type"] != "table" for b in m.blocks)
    assert "c24" in m.blocks[0]["text"]["text"] and m.blocks[0]["text"]["text"].startswith("```")


def test_two_tables_go_to_two_messages() -> None:
    t = Table(("a",), (("1",),))
    assert len(render(Reply((t, t)))) == 2


#: The intent every option of the Sort menus below carries (renderers pass tokens through).
SORT = ShowPage("d", 1, ColumnOrder(0))


def test_buttons_and_selects() -> None:
    reply = Reply((Buttons((
        Button("Next ▶", ShowPage("d", 2), "tok1", "primary"),
        Button("Download CSV", Download("d", "csv"), "tok2"),
        Select("Sort", tuple(Option(f"col{i} ↑", SORT, f"t{i}") for i in range(120))),
    )),))
    (m,) = render(reply)
    (actions,) = m.blocks
    next_button, download, select = actions["elements"]
    assert next_button["value"] == "tok1" and next_button["style"] == "primary"
    assert next_button["action_id"] == "datathread:page:0" and download["action_id"] == "datathread:download:1"
    assert select["type"] == "static_select" and len(select["options"]) == 100
    values = [o["value"] for o in select["options"]]
    assert values == [f"t{i}" for i in range(100)]  # tokens pass through unchanged, capped at 100 options
    too_long = render(Reply((Buttons((Select("Sort", (
        Option("fits", SORT, "x" * OPTION_VALUE), Option("too long", SORT, "y" * (OPTION_VALUE + 1)))),)),)))
    [[element]] = [b["elements"] for b in too_long[0].blocks]
    assert [o["text"]["text"] for o in element["options"]] == ["fits"]  # never a truncated, unverifiable value


def test_long_labels_are_clipped_with_an_ellipsis_within_slack_s_limit() -> None:
    chart, page = Button("📈" * 40, DrawChart("d", "line", 0), "t"), Button("ok", ShowPage("d", 1), "u")
    (m,) = render(Reply((Buttons((chart, page)),), "s" * 400))
    label = m.blocks[0]["elements"][0]["text"]["text"]
    assert label.endswith("…") and utf8_len(label) <= BUTTON_TEXT and label.startswith("📈")
    assert m.blocks[0]["elements"][1]["text"]["text"] == "ok"
    assert m.text == "s" * (FALLBACK_TEXT - 1) + "…"


def test_notice_and_status_are_context_blocks() -> None:
    (m,) = render(Reply((Status("Working… 1.0 s", "working"), Notice("careful <here>", "warning"))))
    assert m.blocks[0]["type"] == "context" and ":hourglass_flowing_sand:" in m.blocks[0]["elements"][0]["text"]
    assert m.blocks[1]["elements"][0]["text"] == ":warning: careful &lt;here&gt;"


def test_code_block_with_omitted_lines_note() -> None:
    (m,) = render(Reply((CodeBlock("a\nb", "code", "python", omitted=12),)))
    assert m.blocks[0]["text"]["text"] == "```\na\nb\n```"
    assert "12 more lines" in m.blocks[1]["elements"][0]["text"]


def test_reply_to_markdown_leaves_status_out() -> None:
    reply = Reply((Status("Working", "working"), Markdown("Looking at **data**"), CodeBlock("1+1"),
                   Notice("done", "info")))
    md = reply_to_markdown(reply)
    assert "Working" not in md
    assert md == "Looking at **data**\n\n```\n1+1\n```\n\nℹ️ done"


@pytest.mark.parametrize("char", ["é", "€", "😀", "ü"])
def test_multi_byte_text_is_split_by_bytes_without_loss(char: str) -> None:
    # 2,000 characters of 2-4 bytes each: under 3,000 characters, but well over 3,000 bytes.
    text = (char * 7 + " ") * 250
    messages = render(Reply((Markdown(text), Notice(text, "warning"))), nonce="b")
    sections = [b["text"]["text"] for m in messages for b in m.blocks if b["type"] == "section"]
    contexts = [b["elements"][0]["text"] for m in messages for b in m.blocks if b["type"] == "context"]
    assert len(sections) > 1 and all(utf8_len(t) <= SECTION_TEXT for t in sections)
    assert all(utf8_len(t) <= CONTEXT_TEXT for t in contexts)
    assert "".join(sections) == text.strip() or "".join(sections) == text
    assert "".join(c.removeprefix(":warning: ") for c in contexts).count(char) == text.count(char)


def test_split_text_by_bytes_never_cuts_a_character() -> None:
    text = "😀" * 1000 + "x" + "é" * 3001  # no spaces or newlines: hard cuts only
    pieces = split_text(text, 3000, utf8_len)
    assert all(utf8_len(p) <= 3000 for p in pieces)
    assert "".join(pieces) == text
    for p in pieces:
        p.encode("utf-8")  # a split surrogate or code point would not encode


def test_wide_dataset_page_is_fixed_width_and_escaped() -> None:
    cols = tuple(f"col{i}" for i in range(TABLE_COLUMNS + 1))
    rows = tuple(tuple("<!channel>" if (r, c) == (0, 0) else f"{r}.{c}" for c in range(len(cols))) for r in range(20))
    (m,) = render(Reply((Markdown("**wide** · rows 1–20 of 20"), Table(cols, rows))), nonce="w")
    assert all(b["type"] != "table" for b in m.blocks)
    code = "".join(b["text"]["text"] for b in m.blocks[1:])
    assert "&lt;!channel&gt;" in code and "<!channel>" not in code
    assert all(f"{r}.{len(cols) - 1}" in code for r in range(20))  # every row, up to the last column
    assert all(utf8_len(b["text"]["text"]) <= SECTION_TEXT for b in m.blocks)


def test_a_data_table_shows_its_whole_page_and_sorts_numbers_as_numbers() -> None:
    # Slack's data_table shows 5 rows a page unless told (page_size), has no column_settings, and
    # sorts a column numerically only when its cells are raw_number.
    table = Table(("who", "amount"), (("<!channel>", "1,200.5"), ("b", "3"), ("c", "")), (False, True))
    block = data_table_block(table, "sales: rows 1–3 of 3")
    assert block is not None
    assert block["page_size"] == 3 and "column_settings" not in block
    assert block["rows"][0] == [{"type": "raw_text", "text": "who"}, {"type": "raw_text", "text": "amount"}]
    assert block["rows"][1] == [{"type": "raw_text", "text": "<!channel>"},
                                {"type": "raw_number", "value": 1200.5, "text": "1,200.5"}]
    assert block["rows"][2][1] == {"type": "raw_number", "value": 3, "text": "3"}
    assert block["rows"][3][1] == {"type": "raw_text", "text": " "}  # a blank stays text


def _bar(title: str, categories: tuple[str, ...], values: tuple[float, ...]) -> Chart:
    return Chart(ChartData("bar", title, categories, (ChartSeries("sum of amount", values),), "region",
                           "sum of amount"))


def test_a_chart_is_a_data_visualization_block_in_the_documented_shape() -> None:
    (m,) = render(Reply((_bar("sales: bar of amount by region", ("east", "<!channel>"), (5.0, 2.5)),),
                        "Chart: sales"), nonce="c")
    block = {k: v for k, v in m.blocks[0].items() if k != "block_id"}
    assert block == {"type": "data_visualization", "title": "sales: bar of amount by region", "chart": {
        "type": "bar",
        "axis_config": {"categories": ["east", "<!channel>"], "x_label": "region", "y_label": "sum of amount"},
        "series": [{"name": "sum of amount", "data": [{"label": "east", "value": 5},
                                                      {"label": "<!channel>", "value": 2.5}]}]}}
    assert m.text == "Chart: sales"


def test_chart_labels_fit_slack_s_limits_and_stay_distinct() -> None:
    long = ("Northwest region of the country", "Northwest region of the state")
    (m,) = render(Reply((_bar("x" * 80, long, (1.0, 2.0)),)))
    chart = m.blocks[0]["chart"]
    labels = chart["axis_config"]["categories"]
    assert all(len(label) <= 20 for label in labels) and len(set(labels)) == 2
    assert [p["label"] for p in chart["series"][0]["data"]] == labels  # each point names its category
    assert len(m.blocks[0]["title"]) <= 50


def test_at_most_two_charts_share_a_message() -> None:
    chart = _bar("c", ("a",), (1.0,))
    messages = render(Reply((chart, chart, chart)))
    assert [sum(b["type"] == "data_visualization" for b in m.blocks) for m in messages] == [2, 1]
