"""Text for Slack's Markdown paths: streamed ``markdown_text`` and ``markdown`` blocks.

Slack reads both as standard Markdown but, like mrkdwn, still gives ``<`` ``>`` ``&`` their Slack
meaning: ``<!channel>``, ``<!here>`` and ``<@U…>`` notify people and ``&amp;`` is read as ``&``.
(slack-sdk documents ``markdown_text`` only as "message text formatted in markdown"; Slack stores
every message's text with those three escaped, and decodes the entities when it shows them.) So
every ``& < >`` in text is sent as an entity: it shows as typed and notifies no one. A ``>`` that
starts a block quote stays a quote marker.

Slack's Markdown also leaves some Markdown unrendered (tables, ``~~~`` fences) and may misread
others (a URL with parentheses, nested lists under a numbered item): ``answer_markdown`` rewrites
those into forms it renders. While a turn runs the text is streamed and must only grow, so every
rewrite here decides from what is already written: an unfinished last line is held back until it
cannot change, and a code block or table still being written is left open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: A fence opening: its info string may not hold a backtick ("```x = 1``` inline" is not a fence).
_OPEN_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^`]*$")
_TABLE_ROW = re.compile(r"^ {0,3}\|")
_ITEM = re.compile(r"^([ \t]*)([-*+]|\d{1,9}[.)])([ \t]+)(?=\S)")
_QUOTE = re.compile(r"^ {0,3}(?:> ?)+")
#: ``[label](url)`` and ``![alt](url)``, the URL with balanced parentheses (Wikipedia's URLs).
_LINK = re.compile(r"(!?)\[([^\]\n]*)\]\(((?:[^()\s]|\([^()\s]*\))+)\)")
#: A partial last line starting so cannot be shown yet: what it becomes depends on what follows.
_UNSETTLED_START = re.compile(r"^\s*$|^[ \t~`|]")


def escape(text: str) -> str:
    """Slack's three control characters as entities: shown as typed, never a mention or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(match: re.Match[str]) -> str:
    # An image becomes a link to it (Slack shows no inline images); parentheses in the URL are
    # percent-encoded so no Markdown reader can end the URL early.
    label = match.group(2) or ("image" if match.group(1) else match.group(3))
    url = match.group(3).replace("(", "%28").replace(")", "%29")
    return f"[{label}]({url})"


def _prose(line: str) -> str:
    quote = _QUOTE.match(line)
    head = quote.group(0) if quote else ""
    return head + escape(_LINK.sub(_link, line[len(head):]))


@dataclass
class _Lists:
    """Nesting of list items by source indent, re-indented so CommonMark nests them (an item must
    start at its parent's content column: 3 spaces under ``1.``, not the 2 models often write)."""

    #: One entry per open level: (source indent, output start column, output content column).
    levels: list[tuple[int, int, int]] = field(default_factory=list)

    def item(self, indent: int, marker: str) -> str:
        while self.levels and self.levels[-1][0] > indent:
            self.levels.pop()
        if self.levels and self.levels[-1][0] == indent:
            start = self.levels.pop()[1]  # a sibling
        elif self.levels:
            start = self.levels[-1][2]  # nested under the item above
        else:
            start = 0
        self.levels.append((indent, start, start + len(marker) + 1))
        return " " * start + marker + " "

    def reset(self) -> None:
        self.levels.clear()


def answer_markdown(text: str, *, running: bool = False) -> str:
    """Markdown written by a model, as Slack's Markdown shows it.

    ``~~~`` fences become backtick fences; a Markdown table becomes a code block of its rows (Slack
    draws no tables there); links whose URL holds parentheses and images become plain links; nested
    list items are indented under their parent's text; ``& < >`` outside code and in code are
    escaped (``escape``). With ``running`` (the live tail of a turn) an unfinished last line is held
    back until it is settled, and an open code block or table is left open so the text only grows.
    """
    lines = text.split("\n")
    held_line = False  # the whole unfinished last line is held back (its newline before is kept)
    if running and _UNSETTLED_START.match(lines[-1]):
        lines.pop()
        held_line = bool(lines)
    elif running:
        cut = lines[-1].find("[")
        if cut >= 0:
            lines[-1] = lines[-1][: cut - 1 if cut and lines[-1][cut - 1] == "!" else cut]
    out: list[str] = []
    fence: str | None = None  # the opening fence's characters while inside a fenced block
    table = False
    lists = _Lists()
    for line in lines:
        if fence is not None:
            stripped = line.strip()
            if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
                out.append("```")
                fence = None
            else:
                out.append(escape(line))
            continue
        if opening := _OPEN_FENCE.match(line):
            if table:
                out.append("```")
                table = False
            fence = opening.group(1)
            lang = opening.group(2)
            out.append("```" + lang)
            lists.reset()
            continue
        if _TABLE_ROW.match(line):
            if not table:
                out.append("```")
                table = True
            out.append(escape(line.strip()))
            continue
        if table:
            out.append("```")
            table = False
        if item := _ITEM.match(line):
            indent = len(item.group(1).expandtabs(4))
            out.append(lists.item(indent, item.group(2)) + _prose(line[item.end():]))
            continue
        if line.strip() and not line[:1].isspace():
            lists.reset()
        out.append(_prose(line))
    if not running and (fence is not None or table):
        out.append("```")
    return "\n".join(out) + ("\n" if held_line else "")
