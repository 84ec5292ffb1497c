"""Teams shapes, pure and table-driven (issue 11): which card a click names, mentions without
``text``, conversations without ``conversationType``, images with only ``downloadUrl``, and card
JSON whose text renders as lines."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from adapters.teams.inbound import clean_text, clicked_card_id, conversation_type, remote_files, thread_key, to_action
from bot.intents import ListFiles
from bot.reply import Button, Buttons, CodeBlock, Markdown, Notice, Reply, Table
from renderers.teams import card, card_lines, code_element

FIXTURES = Path(__file__).parents[1] / "fixtures" / "teams"
BOT = "28:00000000-0000-0000-0000-00000000b07a"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


@pytest.mark.parametrize(
    ("reply_to", "legacy", "expected"),
    [("1700000000000105", None, "1700000000000105"), (None, "1732180811999", "1732180811999"),
     ("-1", "1:1abcDEF", "1:1abcDEF"), (None, None, None), ("-1", None, None), ("", "-1", None)],
)
def test_a_click_names_its_card_wherever_the_activity_carries_it(reply_to: str | None, legacy: str | None,
                                                                   expected: str | None) -> None:
    activity = load("channel_card_submit_legacy_reply_to")
    activity["channelData"]["legacy"] = {"replyToId": legacy} if legacy else {}
    if reply_to is not None:
        activity["replyToId"] = reply_to
    assert clicked_card_id(activity) == expected
    action = to_action(activity)
    assert action is not None and action.token == "TOKEN"  # a click without a card is still a click
    assert (action.message.id if action.message else None) == expected
    assert action.thread.thread == "1732180811554"  # the reply chain, never "-1"


@pytest.mark.parametrize(
    ("text", "entity_text", "expected"),
    [
        ("<at>Data Thread (preview)</at> next", None, "next"),
        ("<at>datathread</at> next", "<at>Data Thread</at>", "next"),
        ("<at>Grace</at> and <at>datathread</at> next", None, "Grace and next"),
        ("next <at>datathread</at>", None, "next"),
        ("<at>datathread</at> next", "<at>datathread</at>", "next"),
    ],
)
def test_the_bot_mention_is_stripped_from_the_text_itself(text: str, entity_text: str | None,
                                                          expected: str) -> None:
    activity = load("channel_mention_without_entity_text")
    activity["text"] = text
    mention: dict[str, Any] = {"mentioned": {"id": BOT, "name": "datathread"}, "type": "mention"}
    if entity_text:
        mention["text"] = entity_text
    entities = [mention]
    if "Grace" in text:  # Teams lists mentions in the order their tags appear
        entities.insert(0, {"mentioned": {"id": "29:grace", "name": "Grace"}, "type": "mention"})
    activity["entities"] = entities
    assert clean_text(activity) == expected


@pytest.mark.parametrize(
    ("conversation", "channel_data", "expected"),
    [
        ({"id": "19:abc@thread.tacv2;messageid=17"}, {}, "channel"),
        ({"id": "19:abc@thread.skype;messageid=17"}, {}, "channel"),
        ({"id": "19:abc@thread.v2"}, {}, "groupChat"),
        ({"id": "19:abc@thread.v2", "isGroup": True}, {}, "groupChat"),
        ({"id": "weird", "isGroup": True}, {"channel": {"id": "19:c@thread.tacv2"}}, "channel"),
        ({"id": "a:1personal"}, {}, "personal"),
        ({"id": "a:1personal", "conversationType": "personal"}, {}, "personal"),
        ({"id": "19:abc@thread.tacv2", "conversationType": "channel"}, {}, "channel"),
    ],
)
def test_a_missing_conversation_type_is_read_from_the_conversation(conversation: dict[str, Any],
                                                                   channel_data: dict[str, Any],
                                                                   expected: str) -> None:
    activity = {"type": "message", "conversation": conversation, "channelData": channel_data}
    assert conversation_type(activity) == expected


def test_a_channel_message_without_conversation_type_keeps_its_reply_chain_thread() -> None:
    activity = load("channel_mention_without_entity_text")
    assert thread_key(activity).thread == "1732180811554"


def test_an_inline_image_with_only_a_download_url_is_an_attachment() -> None:
    (image,) = remote_files(load("personal_inline_image_download_url"))
    assert image.name == "chart.png" and image.url.endswith("/views/original") and image.media_type == "image/png"


# ---- card text that renders ------------------------------------------------------------------------

LISTING = Reply((Markdown("**Workspace** · 2 files · 3 KB\n- `a.csv` · 1 KB\n- `b.csv` · 2 KB"),
                 Buttons((Button("Files", ListFiles(), "tok"),))))


def text_blocks(built: dict[str, Any]) -> list[dict[str, Any]]:
    out = []

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            if item.get("type") == "TextBlock":
                out.append(item)
            walk(item.get("items", []))
    walk(built["body"])
    return out


@pytest.mark.parametrize(
    "reply",
    [
        LISTING,
        Reply((Notice("Could not read 2 files:\n- old.csv: it was deleted.\n- x.csv: too big"),
               Table(("a",), (("1",),)))),
        Reply((Markdown("Steps:\n1. load\n2. plot\n\n```python\nfor x in y:\n    print(x)\n```\nDone."),
               Table(("a",), (("1",),)))),
    ],
    ids=["files-listing", "notice", "answer-with-code"],
)
def test_card_text_shows_each_line_as_a_line_and_no_raw_fences(reply: Reply) -> None:
    built = card(reply)
    for block in text_blocks(built):
        assert "```" not in block["text"]
        assert not re.search(r"(?<!\n)\n(?!\n)", block["text"]), block["text"]


def test_code_in_a_card_is_a_code_block_with_every_space_kept() -> None:
    code = "for x in y:\n    if x:\n\tprint('*x*')\n"
    built = card(Reply((CodeBlock(code, "code", "python", title="Code"), Table(("a",), (("1",),)))))
    element = next(b for b in built["body"] if b["type"] == "CodeBlock")
    assert element["codeSnippet"] == code and element["language"] == "Python"
    fallback_lines = [i["inlines"][0] for i in element["fallback"]["items"]]
    assert all(run["fontType"] == "Monospace" for run in fallback_lines)
    assert fallback_lines[1]["text"] == "\u00a0" * 4 + "if x:"
    assert code_element("x", "cobol")["language"] == "PlainText"


def test_table_cells_and_the_fallback_table_show_values_as_typed() -> None:
    built = card(Reply((Table(("name", "link"), (("*x*", "[x](http://e.io)"), ("a  b", "<at>Bob</at>"))),)))
    table = next(b for b in built["body"] if b["type"] == "Table")
    runs = [c["items"][0]["inlines"][0]["text"] for row in table["rows"] for c in row["cells"]]
    assert runs == ["name", "link", "*x*", "[x](http://e.io)", "a  b", "<at>Bob</at>"]
    fallback = table["fallback"]["text"]
    assert table["fallback"]["fontType"] == "Monospace" and "```" not in fallback
    assert len(fallback.split("\n\n")) == 3  # header and two rows, each its own line


@pytest.mark.parametrize(("text", "expected"), [("a\nb", "a\n\nb"), ("a\n\n\nb\n", "a\n\nb"), ("one", "one")])
def test_card_lines_puts_a_blank_line_between_lines(text: str, expected: str) -> None:
    assert card_lines(text) == expected


def test_another_person_s_mention_stays_when_the_bot_s_entity_text_was_found() -> None:
    activity = load("channel_mention_without_entity_text")
    activity["text"] = "<at>datathread</at> <at>Grace</at> look"
    activity["entities"] = [{"mentioned": {"id": BOT, "name": "datathread"}, "text": "<at>datathread</at>",
                             "type": "mention"},
                            {"mentioned": {"id": "29:grace", "name": "Grace"}, "text": "<at>Grace</at>",
                             "type": "mention"}]
    assert clean_text(activity) == "Grace look"


def test_a_mention_without_entity_text_is_stripped_from_the_html_copy_too() -> None:
    activity = load("channel_mention_without_entity_text")
    activity["text"] = "<at>Data Thread</at> run x y"  # flattened: the HTML copy has the code
    activity["attachments"] = [{"contentType": "text/html", "content":
                                '<div><span itemscope="" itemtype="http://schema.skype.com/Mention" itemid="0">'
                                "Data Thread</span>&nbsp;run <code>x  y</code></div>"}]
    assert clean_text(activity) == "run `x  y`"
