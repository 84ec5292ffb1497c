"""Markdown reaches the terminal rendered: no stray asterisks, backticks or fence lines."""

from __future__ import annotations

from bot.help import COMMANDS, local_agent_help
from bot.reply import Notice
from renderers.terminal import block_lines, inline_markdown, markdown_lines


def test_help_shows_no_markdown_markers() -> None:
    for text in (COMMANDS, local_agent_help()):
        shown = "\n".join(markdown_lines(text) + block_lines(Notice(text)))
        assert "*Commands*" not in shown and "`next`" not in shown and "````" not in shown
        assert "Commands (they act" in shown


def test_code_spans_show_their_content_verbatim() -> None:
    assert inline_markdown("wrote `out_*_file*.csv` and *this*") == "wrote out_*_file*.csv and this"
    assert inline_markdown("a fence (```` ```python ```` …)") == "a fence (```python …)"


def test_a_longer_fence_holds_a_shorter_one_as_code() -> None:
    text = "before\n````\n```python\nx = 1\n```\n````\nafter"
    assert markdown_lines(text) == ["  before", "  ┆ ```python", "  ┆ x = 1", "  ┆ ```", "  after"]
