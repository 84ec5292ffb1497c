"""Reply -> what Microsoft Teams renders: Markdown message text and Adaptive Cards (1.5).

Pure functions. Message text uses Teams' Markdown subset (bold, italic, lists, links, fenced code);
things Teams does not render in a message (tables, headings, raw HTML) are converted. Replies with a
table or buttons become one Adaptive Card kept under ``CARD_BUDGET`` bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from bot.datasets.model import ChartData
from bot.intents import Feedback
from bot.reply import Button, Buttons, Chart, CodeBlock, Markdown, Notice, Reply, Select, Status, Table
from renderers.markdown import NOTICE_EMOJI, code_block_markdown, fence, more_lines, split_text, utf8_len

#: Teams rejects messages over ~100 KB; stay well under it.
MESSAGE_LIMIT = 80_000
#: Adaptive Card payload limit is ~28 KB; keep headroom for the activity envelope.
CARD_BUDGET = 25_000
#: Columns shown in a card table before the rest is left to Download.
MAX_CARD_COLUMNS = 8
#: Choices in one Sort / Chart list before the card budget is even considered.
MAX_CHOICES = 24
#: Informative stream updates may not exceed 1,000 characters.
INFORMATIVE_LIMIT = 1000
#: The key every card action carries in its ``data``; its value is the intent kind (``bot.intents.KINDS``)
#: (``adapters.teams.inbound`` reads clicks with it).
ACTION_KEY = "datathread"
#: Id of the choice-set input in a Sort / Chart show-card (its value is the chosen option's token).
CHOICE_INPUT = "datathread_choice"

_FENCE_LINE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)[^)]*\)")
_STATUS_EMOJI = {"working": "⏳", "done": "✅", "failed": "❌"}


def _escape_html(line: str) -> str:
    # Teams reads message text as Markdown with inline HTML; keep user text literal.
    return line.replace("<", "&lt;").replace(">", "&gt;") if "<" in line else line


def teams_markdown(text: str) -> str:
    """CommonMark-ish text as Teams message Markdown; fenced and inline code are left alone."""
    out: list[str] = []
    lines = text.split("\n")
    in_code = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if _FENCE_LINE.match(line):
            in_code = not in_code
            out.append(line)
        elif in_code:
            out.append(line)
        elif _TABLE_ROW.match(line):
            rows = []
            while i < len(lines) and _TABLE_ROW.match(lines[i]):
                rows.append(lines[i].strip())
                i += 1
            out.append(fence("\n".join(r for r in rows if not re.fullmatch(r"\|[\s:|-]+\|", r))))
            continue
        elif heading := _HEADING.match(line):
            out.append(f"**{_escape_inline(heading.group(2))}**")
        else:
            out.append(_escape_inline(_IMAGE.sub(r"[\1](\2)", line)))
        i += 1
    return "\n".join(out)


def _escape_inline(line: str) -> str:
    parts = line.split("`")
    # Even parts are outside inline code spans.
    return "`".join(_escape_html(p) if k % 2 == 0 else p for k, p in enumerate(parts))


def status_line(status: Status) -> str:
    return f"{_STATUS_EMOJI[status.state]} _{status.text}_"


def plain_table(table: Table, max_rows: int | None = None) -> str:
    """A monospace text table (for message text and for card fallbacks)."""
    rows = table.rows if max_rows is None else table.rows[:max_rows]
    width = len(table.columns)
    # Cells come already clipped (dataset pages: ``bot.datasets.formatting``).
    cells = [list(table.columns), *(list(r[:width]) for r in rows)]
    widths = [max(len(row[i]) for row in cells if i < len(row)) for i in range(len(table.columns))]
    lines = []
    for row in cells:
        lines.append("  ".join(
            c.rjust(widths[i]) if i < len(table.numeric) and table.numeric[i] else c.ljust(widths[i])
            for i, c in enumerate(row)
        ).rstrip())
    if max_rows is not None and len(table.rows) > max_rows:
        lines.append(f"… {len(table.rows) - max_rows} more rows")
    return "\n".join(lines)


def message_text(reply: Reply, *, include_status: bool = True) -> str:
    """The reply as Teams Markdown. Buttons are left out (cards carry them).

    Without the status line the text of a running turn only grows, which Teams streaming requires.
    """
    parts: list[str] = []
    for block in reply.blocks:
        match block:
            case Status():
                if include_status:
                    parts.append(status_line(block))
            case Markdown(text=text):
                if text.strip():
                    parts.append(teams_markdown(text.strip("\n")))
            case CodeBlock():
                parts.append(code_block_markdown(block))
            case Table():
                parts.append(fence(plain_table(block)))
            case Chart():
                parts.append(fence(plain_table(block.table())))
            case Notice(text=text, level=level):
                parts.append(f"{NOTICE_EMOJI[level]} {_escape_inline(text)}")
            case Buttons():
                pass
            case _:
                raise TypeError(f"unhandled reply block {block!r}")
    return "\n\n".join(parts)


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """``text`` in pieces under Teams' message size (measured in UTF-8 bytes), fences kept balanced."""
    return split_text(text, limit, utf8_len)


def needs_card(reply: Reply) -> bool:
    return any(isinstance(b, Table | Chart | Buttons) for b in reply.blocks)


# ---- Adaptive Cards ------------------------------------------------------------------------------


def _text_block(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **extra}


#: ``CodeBlock`` languages Teams highlights (its documented names); anything else is PlainText.
CODE_LANGUAGES = {
    "python": "Python", "py": "Python", "sql": "SQL", "bash": "Bash", "sh": "Bash", "shell": "Bash",
    "json": "JSON", "javascript": "JavaScript", "js": "JavaScript", "typescript": "TypeScript",
    "ts": "TypeScript", "html": "HTML", "xml": "XML", "css": "CSS", "powershell": "PowerShell",
    "java": "Java", "go": "Go", "c": "C", "cpp": "C++", "c++": "C++", "csharp": "C#", "c#": "C#",
    "php": "PHP", "perl": "Perl", "graphql": "GraphQL",
}
_NBSP = "\u00a0"
_CARD_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n`]*\n(.*?)(?:\n {0,3}\1[ \t]*$|\Z)", re.S | re.M)


def card_lines(text: str) -> str:
    """Text for a card ``TextBlock``: every line its own paragraph. A TextBlock joins lines that
    are not separated by a blank line, so lists, notices and listings would run together."""
    return "\n\n".join(line.rstrip() for line in text.split("\n") if line.strip())


def _spaces(line: str) -> str:
    # Runs of spaces (indentation, column padding) as no-break spaces: Markdown would fold them.
    return re.sub(r" {2,}|^ ", lambda m: _NBSP * len(m.group(0)), line.replace("\t", "    "))


def monospace_lines(text: str) -> dict[str, Any]:
    """Literal lines in monospace, one ``RichTextBlock`` each (a ``TextRun`` is never read as
    Markdown, so code and data show as typed), spaces kept."""
    return {"type": "Container", "items": [
        {"type": "RichTextBlock", "spacing": "None",
         "inlines": [{"type": "TextRun", "text": _spaces(line) or _NBSP, "fontType": "Monospace"}]}
        for line in text.split("\n")
    ]}


def code_element(code: str, language: str = "") -> dict[str, Any]:
    """Code as Teams' ``CodeBlock`` (monospace, highlighted, copyable), falling back to literal
    monospace lines where a client does not support it."""
    return {"type": "CodeBlock", "codeSnippet": code, "language": CODE_LANGUAGES.get(language.lower(), "PlainText"),
            "fallback": monospace_lines(code)}


def markdown_items(text: str, **extra: Any) -> list[dict[str, Any]]:
    """Teams Markdown as card elements: prose in ``TextBlock``s (``card_lines``), fenced code as
    ``code_element``s (a TextBlock does not render fences)."""
    items: list[dict[str, Any]] = []
    last = 0
    for m in _CARD_FENCE.finditer(text):
        if text[last:m.start()].strip():
            items.append(_text_block(card_lines(text[last:m.start()]), **extra))
        items.append(code_element(m.group(3), m.group(2)))
        last = m.end()
    if text[last:].strip():
        items.append(_text_block(card_lines(text[last:]), **extra))
    return items


def _fixed_lines(text: str) -> str:
    """Fixed-width text (a plain table) for a monospace TextBlock: lines apart, padding kept."""
    return "\n\n".join(_spaces(line) or _NBSP for line in text.split("\n"))


def chart_element(data: ChartData, fallback: dict[str, Any]) -> dict[str, Any]:
    """An Adaptive Card chart Teams draws itself (learn.microsoft.com/microsoftteams/platform/
    task-modules-and-cards/cards/charts-in-adaptive-cards): a bar is ``Chart.VerticalBar`` (x / y
    points; more series: ``Chart.VerticalBar.Grouped``), a line or area ``Chart.Line`` (a legend and
    x / y values per series), a pie ``Chart.Pie`` (legend / value). A client that draws no charts
    shows ``fallback`` (the numbers as a table). Text is plain: data shows as written."""
    points = list(zip(data.categories, range(len(data.categories)), strict=True))
    titles = {"title": data.title, "xAxisTitle": data.x_label, "yAxisTitle": data.y_label}
    element: dict[str, Any]
    if data.kind == "pie":
        values = data.series[0].values if data.series else ()
        element = {"type": "Chart.Pie", "title": data.title,
                   "data": [{"legend": c, "value": values[i]} for c, i in points if i < len(values)]}
    elif data.kind == "bar" and len(data.series) == 1:
        element = {"type": "Chart.VerticalBar", **titles,
                   "data": [{"x": c, "y": data.series[0].values[i]} for c, i in points]}
    else:
        kind = "Chart.VerticalBar.Grouped" if data.kind == "bar" else "Chart.Line"  # Teams has no area chart
        element = {"type": kind, **titles, "data": [
            {"legend": s.name, "values": [{"x": c, "y": s.values[i]} for c, i in points]} for s in data.series]}
    return {**{k: v for k, v in element.items() if v != ""}, "fallback": fallback}


def _table_element(table: Table, columns: int, rows: int) -> dict[str, Any]:
    shown = range(min(columns, len(table.columns)))

    def cell(text: str, i: int, header: bool = False) -> dict[str, Any]:
        # Cell values are data: a TextRun shows ``*x*`` or ``[x](url)`` as typed (a TextBlock would
        # read it as Markdown).
        numeric = i < len(table.numeric) and table.numeric[i]
        run = {"type": "TextRun", "text": text or " ", **({"weight": "Bolder"} if header else {})}
        block: dict[str, Any] = {"type": "RichTextBlock", "inlines": [run]}
        if numeric:
            block["horizontalAlignment"] = "Right"
        return {"type": "TableCell", "items": [block]}

    return {
        "type": "Table",
        "gridStyle": "accent",
        "firstRowAsHeaders": True,
        "showGridLines": True,
        "columns": [{"width": 1} for _ in shown],
        "rows": [
            {"type": "TableRow", "cells": [cell(table.columns[i], i, True) for i in shown]},
            *({"type": "TableRow", "cells": [cell(r[i] if i < len(r) else "", i) for i in shown]}
              for r in table.rows[:rows]),
        ],
        "fallback": _text_block(
            _fixed_lines(plain_table(Table(table.columns[: len(shown)], table.rows[:rows], table.numeric), 15)),
            fontType="Monospace",
        ),
    }


def _action(item: Button | Select, choices: int) -> dict[str, Any]:
    if isinstance(item, Button):
        return {"type": "Action.Submit", "title": item.label,
                "data": {ACTION_KEY: item.kind, "token": item.token},
                **({"style": "positive"} if item.style == "primary" else {})}
    options = item.options[:choices]
    return {
        "type": "Action.ShowCard",
        "title": item.label,
        "card": {
            "type": "AdaptiveCard",
            "body": [{
                "type": "Input.ChoiceSet",
                "id": CHOICE_INPUT,
                "style": "compact",
                "isRequired": True,
                "errorMessage": "Choose one",
                "value": options[0].token if options else "",
                "choices": [{"title": o.label, "value": o.token} for o in options],
            }],
            "actions": [{"type": "Action.Submit", "title": item.label, "data": {ACTION_KEY: item.kind}}],
        },
    }


def card(reply: Reply, budget: int = CARD_BUDGET) -> dict[str, Any]:
    """The reply as an Adaptive Card 1.5 under ``budget`` bytes of JSON.

    Wide tables show ``MAX_CARD_COLUMNS`` columns; if the card is still too large, choice lists are
    shortened, then columns, then rows are dropped, each with a note saying so (Download has all).
    """
    columns, rows, choices = MAX_CARD_COLUMNS, max(len(t.rows) for t in _tables(reply)), MAX_CHOICES
    while True:
        built = _card(reply, columns, rows, choices)
        if len(json.dumps(built, ensure_ascii=False).encode()) <= budget:
            return built
        if choices > 6:
            choices //= 2
        elif columns > 3:
            columns -= 1
        elif rows > 1:
            rows //= 2
        else:
            return _card(Reply((Notice("This result is too large to show here; use Download."),),
                               reply.summary), 1, 1, 0)


def _tables(reply: Reply) -> list[Table]:
    """The tables a card shows, a chart's numbers (its fallback) included."""
    tables = [b.table() if isinstance(b, Chart) else b for b in reply.blocks if isinstance(b, Table | Chart)]
    return tables or [Table((), ())]


def _card(reply: Reply, columns: int, rows: int, choices: int) -> dict[str, Any]:
    body: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []
    fallback: list[str] = []
    for block in reply.blocks:
        match block:
            case Status():
                body.append(_text_block(status_line(block), isSubtle=True))
            case Markdown(text=text):
                if text.strip():
                    body.extend(markdown_items(teams_markdown(text.strip())))
                    fallback.append(text.strip())
            case CodeBlock(text=code, language=language, title=title, omitted=omitted, role=role):
                if title:
                    body.append(_text_block(f"**{_escape_inline(title)}**"))
                note = _text_block(more_lines(omitted, role), isSubtle=True, size="Small") if omitted else None
                if note and role != "code":
                    body.append(note)
                body.append(code_element(code or " ", language))
                if note and role == "code":
                    body.append(note)
            case Notice(text=text, level=level):
                color = {"info": "Default", "warning": "Warning", "error": "Attention"}[level]
                body.append(_text_block(card_lines(f"{NOTICE_EMOJI[level]} {_escape_inline(text)}"), color=color))
                fallback.append(text)
            case Chart(data=data):
                body.append(chart_element(data, _table_element(block.table(), columns, rows)))
                fallback.append(plain_table(block.table(), 10))
            case Table():
                body.append(_table_element(block, columns, rows))
                fallback.append(plain_table(block, 10))
                notes = []
                if len(block.columns) > columns:
                    notes.append(f"{columns} of {len(block.columns)} columns")
                if len(block.rows) > rows:
                    notes.append(f"{rows} of this page's {len(block.rows)} rows")
                if notes:
                    body.append(_text_block(f"Showing {' and '.join(notes)}; Download has everything.",
                                            isSubtle=True, size="Small"))
            case Buttons(items=items):
                actions.extend(_action(item, choices) for item in items if not isinstance(item, Select)
                               or item.options[:choices])
            case _:
                raise TypeError(f"unhandled reply block {block!r}")
    built: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.5",
        "fallbackText": ("\n\n".join(fallback) or reply.summary)[:2000],
        "msteams": {"width": "Full"},
        "body": body,
    }
    if actions:
        built["actions"] = actions
    return built


# ---- a running turn --------------------------------------------------------------------------


@dataclass(frozen=True)
class TeamsMessage:
    """One Teams message of a turn: Markdown ``text`` and, under it, an Adaptive Card of buttons."""

    text: str
    summary: str = ""
    card: dict[str, Any] | None = None
    #: The turn a 👍 / 👎 under this message rates (Teams' own feedback loop), if it has them.
    feedback_turn: str | None = None


def stream_text(reply: Reply, *, final: bool) -> str:
    """The text a Teams stream shows: the turn without its status line, so it only grows."""
    return message_text(reply, include_status=False)


def turn_messages(reply: Reply, *, final: bool) -> list[TeamsMessage]:
    """A turn as Teams messages under ``MESSAGE_LIMIT`` each; its buttons on a card under the last."""
    pieces = split_message(message_text(reply)) or [""]
    verdict = next((b for b in reply.blocks if isinstance(b, Buttons) and _feedback_turn(b) is not None), None)
    buttons = tuple(b for b in reply.blocks if isinstance(b, Buttons) and b is not verdict)
    last = card(Reply(buttons)) if buttons else None
    turn = _feedback_turn(verdict) if verdict is not None else None
    return [TeamsMessage(piece, reply.summary if i == 0 else "", last if i == len(pieces) - 1 else None,
                         turn if i == len(pieces) - 1 else None)
            for i, piece in enumerate(pieces)]


def _feedback_turn(buttons: Buttons) -> str | None:
    """The turn a 👍 / 👎 pair rates (Teams shows them as its own feedback loop), else ``None``."""
    intents = [b.intent for b in buttons.items if isinstance(b, Button)]
    if len(intents) != 2 or not all(isinstance(i, Feedback) for i in intents):
        return None
    return next(i.turn for i in intents if isinstance(i, Feedback))
