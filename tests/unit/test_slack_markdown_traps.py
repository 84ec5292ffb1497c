"""Markdown traps and escaping on both Slack paths, table-driven (issue 11, issue 17 item 5).

Block Kit (dataset pages, notices, listings) gets mrkdwn from ``markdown_to_mrkdwn``; a live turn is
sent as Markdown (``markdown_text`` / ``markdown`` blocks) through ``answer_markdown``.
"""

from __future__ import annotations

import re

import pytest

from bot.reply import CodeBlock, Markdown, Notice, Reply, Status, Table
from renderers.slack import markdown_to_mrkdwn, render, stream_text, turn_messages
from renderers.slack_markdown import answer_markdown

WIKI = "https://en.wikipedia.org/wiki/Python_(programming_language)"
LIVE_MENTION = re.compile(r"<(?:!(?:channel|here|everyone)|@[UW][A-Z0-9]+)")


@pytest.mark.parametrize(
    ("md", "expected"),
    [
        (f"[Python]({WIKI})", f"<{WIKI}|Python>"),
        (f"see [Python]({WIKI}).", f"see <{WIKI}|Python>."),
        ("**`df.head()`** now", "*`df.head()`* now"),
        ("*`x`* and __`y`__", "_`x`_ and *`y`*"),
        ("<https://x.io/?a=1&b=2>", "<https://x.io/?a=1&amp;b=2>"),
        ("![chart](https://x.io/c.png)", "<https://x.io/c.png|chart>"),
        ("![](https://x.io/c.png)", "<https://x.io/c.png|https://x.io/c.png>"),
        ("~~~python\nx = 1 < 2\n~~~\nafter", "```\nx = 1 &lt; 2\n```\nafter"),
        ("~~~\nunclosed", "```\nunclosed"),
        ("| a | b |\n|---|---|\n| 1 | *x* |\nnext", "```\na  b\n-  ---\n1  *x*\n```\nnext"),
        ("1. one\n   - sub\n     - subsub", "1. one\n   • sub\n     • subsub"),
        ("<!channel> <!here> <@U123> &amp;", "&lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; &amp;amp;"),
    ],
)
def test_block_kit_mrkdwn_renders_each_markdown_trap(md: str, expected: str) -> None:
    assert markdown_to_mrkdwn(md) == expected


@pytest.mark.parametrize(
    ("md", "expected"),
    [
        (f"[Python]({WIKI})", "[Python](https://en.wikipedia.org/wiki/Python_%28programming_language%29)"),
        ("**`df.head()`** now", "**`df.head()`** now"),
        ("<https://x.io/?a=1&b=2>", "&lt;https://x.io/?a=1&amp;b=2&gt;"),
        ("![chart](https://x.io/c.png)", "[chart](https://x.io/c.png)"),
        ("~~~python\nx = 1 < 2\n~~~", "```python\nx = 1 &lt; 2\n```"),
        ("| a | b |\n|---|---|\n| 1 | 2 |", "```\n| a | b |\n|---|---|\n| 1 | 2 |\n```"),
        ("1. one\n  - sub\n    - subsub\n2. two", "1. one\n   - sub\n     - subsub\n2. two"),
        ("- a\n  - b", "- a\n  - b"),
        ("> quoted <!here>", "> quoted &lt;!here&gt;"),
        ("<!channel> <!here> <@U123> &amp;", "&lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; &amp;amp;"),
        ("a < b && c > d", "a &lt; b &amp;&amp; c &gt; d"),
        ("Use ```x = 1``` here\nmore", "Use ```x = 1``` here\nmore"),
    ],
)
def test_streamed_markdown_renders_each_markdown_trap(md: str, expected: str) -> None:
    assert answer_markdown(md) == expected


TRAPS = (
    f"Intro with [Python]({WIKI}) and ![c](https://x/c.png) <!here>\n"
    "1. one\n  - nested\n    - deeper\n2. two\n"
    "| a | b |\n|---|---|\n| 1 | <@U1> |\n"
    "after the table\n~~~py\nif a < b:\n    pass\n~~~\n> quote\nend"
)


def test_a_streamed_answer_only_ever_grows_and_ends_as_the_final_text() -> None:
    shown = ""
    for i in range(len(TRAPS) + 1):
        text = answer_markdown(TRAPS[:i], running=True)
        assert text.startswith(shown), (i, shown, text)
        shown = text
    assert answer_markdown(TRAPS).startswith(shown)
    assert not LIVE_MENTION.search(answer_markdown(TRAPS))


DATA = "<!channel> <!here> <@U0BOSS> &amp;"
HOSTILE = Reply((
    Status(f"running {DATA}", "working"),
    Markdown(f"Answer {DATA}"),
    CodeBlock(f"print('{DATA}')", "code", "python", title=f"Code {DATA}"),
    CodeBlock(f"{DATA}\n", role="output"),
    Table((DATA, "b"), ((DATA, "1"),)),
    Table(tuple(f"{DATA}{i}" for i in range(25)), (tuple(DATA for _ in range(25)),)),
    Notice(f"File {DATA}.csv: it was deleted."),
), summary=f"Answer {DATA}")


def _parsed_texts(blocks: tuple[dict, ...] | list[dict]) -> list[str]:
    out = []
    for b in blocks:
        if b["type"] == "markdown":
            out.append(b["text"])
        elif b["type"] == "section":
            out.append(b["text"]["text"])
        elif b["type"] == "context":
            out += [e["text"] for e in b["elements"]]
    return out


@pytest.mark.parametrize("final", [False, True])
def test_data_notifies_no_one_on_any_slack_path(final: bool) -> None:
    texts = [stream_text(HOSTILE, final=final)]
    for m in turn_messages(HOSTILE, final=final):
        texts += [m.text, *_parsed_texts(m.blocks)]
    for m in render(HOSTILE):
        texts += [m.text, *_parsed_texts(m.blocks)]
    assert all(not LIVE_MENTION.search(t) for t in texts), [t for t in texts if LIVE_MENTION.search(t)]
    # Literal, as typed: Slack shows each entity as the character.
    assert "&lt;!channel&gt; &lt;!here&gt; &lt;@U0BOSS&gt; &amp;amp;" in stream_text(HOSTILE, final=True)


def test_inline_triple_backticks_do_not_turn_the_rest_of_the_message_into_code() -> None:
    assert markdown_to_mrkdwn("Use ```x = 1``` here\n**more** text") == "Use ```x = 1``` here\n*more* text"
