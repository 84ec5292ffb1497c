"""Reply -> plain terminal text (no ANSI escapes, so piped output stays clean).

Every block renders to a list of lines, so the console can print a live turn block by block.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
from dataclasses import dataclass

from bot.datasets.model import CHART_KINDS
from bot.intents import ColumnOrder, Download, DrawChart, ShowPage
from bot.reply import (
    Block,
    Button,
    Buttons,
    Chart,
    CodeBlock,
    Markdown,
    Notice,
    Option,
    Reply,
    Select,
    Status,
    Table,
)

INDENT = "  "
MAX_CELL = 28

_BOLD = re.compile(r"\*\*(.+?)\*\*|(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")


def _width() -> int:
    return max(60, min(shutil.get_terminal_size((120, 40)).columns, 160))


def display_width(text: str) -> int:
    """Columns a string takes in a terminal (wide East Asian characters count twice)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _fit(text: str, width: int) -> str:
    text = text.replace("\n", " ")
    if display_width(text) <= width:
        return text
    out = ""
    for ch in text:
        if display_width(out + ch) > width - 1:
            break
        out += ch
    return out + "…"


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * (width - display_width(text))
    return gap + text if right else text + gap


_CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)")
_FENCE = re.compile(r"^\s*(`{3,})")


def inline_markdown(text: str) -> str:
    """One line of Markdown as plain text: code spans shown as their content (any number of
    backticks, as CommonMark), emphasis markers dropped, links as "text (url)"."""
    spans: list[str] = []

    def keep(m: re.Match[str]) -> str:  # code is shown verbatim: no emphasis or links inside it
        body = m.group(2)
        if len(body) > 2 and body.startswith(" ") and body.endswith(" "):
            body = body[1:-1]
        spans.append(body)
        return f"\x00{len(spans) - 1}\x00"

    line = _CODE_SPAN.sub(keep, text)
    line = _BOLD.sub(lambda m: m.group(1) or m.group(2), line)
    line = _LINK.sub(r"\1 (\2)", line)
    return re.sub("\x00(\\d+)\x00", lambda m: spans[int(m.group(1))], line)


def markdown_lines(text: str) -> list[str]:
    """Markdown made readable as plain text: emphasis and code markers dropped, code fences kept as code
    (a fence closes only on a run of at least as many backticks as opened it)."""
    lines: list[str] = []
    fence = ""
    for raw in text.split("\n"):
        opening = _FENCE.match(raw)
        if opening and (not fence or (len(opening.group(1)) >= len(fence) and not raw.strip().strip("`"))):
            fence = "" if fence else opening.group(1)
            continue
        if fence:
            lines.append(INDENT + "┆ " + raw)
            continue
        line = re.sub(r"^#{1,6}\s+", "", inline_markdown(raw))
        lines.append(INDENT + line if line else "")
    return lines


def table_lines(table: Table, width: int | None = None) -> list[str]:
    """A box-drawn table that fits the terminal; columns that do not fit are counted, not wrapped."""
    width = width or _width()
    numeric = table.numeric or tuple(False for _ in table.columns)
    widths = [
        min(MAX_CELL, max([display_width(col)] + [display_width(row[i]) for row in table.rows]))
        for i, col in enumerate(table.columns)
    ]
    shown, used = 0, len(INDENT) + 1
    for w in widths:
        if used + w + 3 > width - 12 and shown > 0:
            break
        used += w + 3
        shown += 1
    widths = widths[:shown]

    def row_line(cells: tuple[str, ...], header: bool = False) -> str:
        parts = [_pad(_fit(cells[i], w), w, numeric[i] and not header) for i, w in enumerate(widths)]
        return INDENT + "│ " + " │ ".join(parts) + " │"

    rule = "─┼─".join("─" * w for w in widths)
    lines = [INDENT + "┌─" + "─┬─".join("─" * w for w in widths) + "─┐", row_line(table.columns, True)]
    lines.append(INDENT + "├─" + rule + "─┤")
    lines += [row_line(row) for row in table.rows]
    lines.append(INDENT + "└─" + "─┴─".join("─" * w for w in widths) + "─┘")
    if shown < len(table.columns):
        hidden = ", ".join(table.columns[shown:])
        lines.append(INDENT + _fit(f"… {len(table.columns) - shown} more columns: {hidden}", width - 2))
    return lines


def _buttons_hint(buttons: Buttons) -> str:
    """The typed commands that do what the buttons do, derived from the intents they carry."""
    hints: list[str] = []
    shown = buttons.shown.page if isinstance(buttons.shown, ShowPage) else None
    for item in buttons.items:
        match item:
            case Button(intent=ShowPage(page=page)) if shown is not None and page > shown:
                hints.append("[n]ext")
            case Button(intent=ShowPage(page=page)) if shown is not None and page < shown:
                hints.append("[p]rev")
            case Select(options=(Option(intent=ShowPage(sort=ColumnOrder())), *_)):
                hints.append("sort <column> [desc]")
            case Select(options=(Option(intent=DrawChart()), *_)):
                hints.append(f"chart <{'|'.join(CHART_KINDS)}> <x> [y]")
            case _:
                pass
    if any(isinstance(i, Button) and isinstance(i.intent, Download) for i in buttons.items):
        hints.append("download [csv|parquet]")
    return INDENT + "  ".join(hints) if hints else ""


def status_line(status: Status) -> str:
    mark = {"working": "…", "done": "✓", "failed": "✗"}[status.state]
    return f"{INDENT}{mark} {status.text.lower() if status.state == 'done' else status.text}"


def block_lines(block: Block) -> list[str]:
    """The lines one block prints as."""
    match block:
        case Markdown(text=text):
            return markdown_lines(text)
        case Status():
            return [status_line(block)]
        case CodeBlock(text=text, role="code", omitted=omitted):
            lines = [f"{INDENT}┆ {line}" for line in text.split("\n")]
            return lines + ([f"{INDENT}┆ … {omitted} more lines"] if omitted else [])
        case CodeBlock(text=text, role=role, omitted=omitted):
            head = [f"{INDENT}  … {omitted} earlier lines (full output in the workspace)"] if omitted else []
            mark = "✗ " if role == "error" else "  "
            body = [f"{INDENT}{mark if i == 0 else '  '}{line}" for i, line in enumerate(text.split("\n"))]
            return head + body
        case Table():
            return table_lines(block)
        case Chart():
            return table_lines(block.table())
        case Buttons():
            hint = _buttons_hint(block)
            return [hint] if hint else []
        case Notice(text=text, level=level):
            mark = {"info": "", "warning": "! ", "error": "✗ "}[level]
            first, *rest = (inline_markdown(line) for line in text.split("\n"))
            return [f"{INDENT}{mark}{first}", *(f"{INDENT}  {line}" for line in rest)]
        case _:
            raise TypeError(f"unhandled block {block!r}")


def render(reply: Reply) -> str:
    """The whole reply as text (status last, where a reader looks for how it ended)."""
    status = [b for b in reply.blocks if isinstance(b, Status)]
    body = [line for b in reply.blocks if not isinstance(b, Status) for line in block_lines(b)]
    return "\n".join(body + [status_line(s) for s in status])


# ---- a running turn --------------------------------------------------------------------------

@dataclass(frozen=True)
class Frame:
    """A turn on the terminal: the lines of each block, in order (the console prints what is new)."""

    blocks: tuple[tuple[str, ...], ...]
    final: bool


def turn_messages(reply: Reply, *, final: bool) -> list[Frame]:
    """The turn as one frame. While it runs, the answer's last line is held back (it may still
    grow, and a terminal cannot take back a printed word); at the end the status closes it."""
    blocks = [b for b in reply.blocks if not isinstance(b, Status)]
    frame = [tuple(block_lines(b)) for b in blocks]
    if not final and blocks and isinstance(blocks[-1], Markdown):
        frame[-1] = frame[-1][:-1]
    if final:
        frame.append(tuple(status_line(b) for b in reply.blocks if isinstance(b, Status)))
    return [Frame(tuple(frame), final)]


def stream_text(reply: Reply, *, final: bool) -> str:
    """The turn as plain text (the console does not stream: it prints what is new of each frame)."""
    return render(reply)
