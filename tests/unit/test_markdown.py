"""Platform-free Markdown: a reply as Markdown text, and long text split or cut without losing characters."""

from __future__ import annotations

import re

import pytest

from bot.reply import Buttons, CodeBlock, Markdown, Notice, Reply, Status, Table
from renderers.markdown import clip, fence, fit, reply_to_markdown, split_text, utf8_len


def test_a_fence_cannot_be_closed_by_the_code_inside() -> None:
    assert fence("print(1)", "python") == "```python\nprint(1)\n```"
    inner = "x = '''\n```\n'''"
    assert fence(inner) == "````\n" + inner + "\n````"


def test_a_reply_becomes_markdown_blocks_in_order() -> None:
    reply = Reply((
        Status("Done in 1.0 s", "done", 1.0), Markdown("\nI computed it.\n"), Markdown("   "),
        CodeBlock("x = 1", "code", "python", omitted=3), CodeBlock("1", "output", title="Output", omitted=1),
        Table(("name", "n|x"), (("a|b", "1"),), (False, True)), Notice("kept 2 rows", "warning"),
        Buttons(()),
    ))
    assert reply_to_markdown(reply).split("\n\n") == [
        "I computed it.",
        "```python\nx = 1\n```\n_… 3 more lines not shown (full text in the workspace)_",
        "**Output**\n_… 1 earlier line not shown (full text in the workspace)_\n```\n1\n```",
        "| name | n\\|x |\n| --- | ---: |\n| a\\|b | 1 |",
        "⚠️ kept 2 rows",
    ]
    assert reply_to_markdown(reply, include_status=True).startswith("_Done in 1.0 s_\n\n")


@pytest.mark.parametrize(("text", "limit", "measure", "fitted"), [
    ("hello", 10, len, "hello"), ("hello world", 5, len, "hello"), ("ééé", 4, utf8_len, "éé"),
    ("😀a", 3, utf8_len, ""), ("a😀", 4, utf8_len, "a"),
])
def test_fit_keeps_the_longest_prefix_of_whole_characters(text: str, limit: int, measure: object,
                                                          fitted: str) -> None:
    assert fit(text, limit, measure) == fitted  # type: ignore[arg-type]


def test_clip_marks_a_cut_with_an_ellipsis_within_the_limit() -> None:
    assert clip("short", 10) == "short"
    assert clip("a long label for a button", 10) == "a long la…"
    clipped = clip("é" * 50, 20, utf8_len)
    assert clipped.endswith("…") and utf8_len(clipped) <= 20


def test_utf8_length_is_never_less_than_the_character_count() -> None:
    for text in ("abc", "é", "€", "😀", "\ud800"):
        assert utf8_len(text) >= len(text)


def test_split_prefers_line_breaks_and_loses_nothing() -> None:
    text = "\n".join(f"line number {i}" for i in range(100))
    pieces = split_text(text, 200)
    assert all(len(p) <= 200 for p in pieces) and "".join(pieces) == text
    assert all(p.endswith("\n") for p in pieces[:-1])


def test_split_falls_back_to_spaces_then_hard_cuts() -> None:
    words = " ".join(["word"] * 100)
    assert all(p.endswith(" ") for p in split_text(words, 50)[:-1])
    solid = "x" * 100
    assert split_text(solid, 30) == ["x" * 26, "x" * 26, "x" * 26, "x" * 22]


def test_a_fence_open_at_a_cut_is_closed_and_reopened() -> None:
    text = "Intro\n~~~python\n" + "".join(f"print({i})\n" for i in range(40)) + "~~~\nAfter."
    pieces = split_text(text, 120)
    assert len(pieces) > 2
    for piece in pieces:
        assert len(piece) <= 120
        assert len(re.findall(r"^~~~", piece, re.M)) % 2 == 0  # each piece renders on its own
    assert pieces[1].startswith("~~~python\n")


def test_tiny_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        split_text("abc", 8)
