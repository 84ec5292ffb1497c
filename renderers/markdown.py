"""Platform-free Markdown helpers: a ``Reply`` as Markdown text, and splitting long text safely.

Used by the Slack renderer (native streaming takes standard Markdown) and usable by any surface
whose messages accept Markdown. Nothing here knows a platform.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from bot.reply import Buttons, Chart, CodeBlock, Markdown, Notice, Reply, Status, Table

#: Emoji shown before a notice, per level (Unicode, so every Markdown client shows them).
NOTICE_EMOJI = {"info": "ℹ️", "warning": "⚠️", "error": "❌"}

_FENCE = re.compile(r"^\s*(```|~~~)")


def fence(text: str, language: str = "") -> str:
    """``text`` as a fenced code block whose fence cannot be closed by the text itself."""
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{language}\n{text}\n{ticks}"


def more_lines(omitted: int, role: str) -> str:
    """The note under a clipped code or output block."""
    where = "earlier" if role in ("output", "error") else "more"
    return f"… {omitted:,} {where} line{'s' if omitted != 1 else ''} not shown (full text in the workspace)"


def code_block_markdown(block: CodeBlock) -> str:
    parts = []
    if block.title:
        parts.append(f"**{block.title}**")
    if block.omitted and block.role in ("output", "error"):
        parts.append(f"_{more_lines(block.omitted, block.role)}_")
    parts.append(fence(block.text or " ", block.language))
    if block.omitted and block.role == "code":
        parts.append(f"_{more_lines(block.omitted, block.role)}_")
    return "\n".join(parts)


def table_markdown(table: Table) -> str:
    """A GitHub-style Markdown table (pipes in cells escaped)."""

    def row(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    align = [("---:" if i < len(table.numeric) and table.numeric[i] else "---") for i in range(len(table.columns))]
    return "\n".join([row(table.columns), "| " + " | ".join(align) + " |", *(row(r) for r in table.rows)])


def _same(text: str) -> str:
    return text


def reply_to_markdown(reply: Reply, *, include_status: bool = False,
                      prose: Callable[[str, bool], str] | None = None,
                      data: Callable[[str], str] = _same,
                      table: Callable[[Table], str] = table_markdown,
                      running: bool = False) -> str:
    """The reply as one Markdown text, blocks separated by blank lines.

    Buttons are left out (they are sent as blocks); the status line only when
    asked (a surface that shows status natively leaves it out so the text only ever grows).
    A surface whose Markdown needs more care passes ``prose`` (for Markdown blocks; its flag says
    the block is the live tail of a ``running`` turn), ``data`` (applied to code, output, titles and
    notices: text that is data, never markup) and ``table``.
    """
    parts: list[str] = []
    shown = [b for b in reply.blocks if not isinstance(b, Buttons | Status)
             and not (isinstance(b, Markdown) and not b.text.strip())]
    for block in reply.blocks:
        match block:
            case Markdown(text=text):
                if text.strip():
                    tail = running and block is shown[-1]  # the block still being written
                    body = text.strip("\n")
                    parts.append(prose(body, tail) if prose else body)
            case Status(text=text):
                if include_status:
                    parts.append(f"_{data(text)}_")
            case CodeBlock():
                if data is not _same:
                    title = data(block.title) if block.title else block.title
                    block = replace(block, text=data(block.text), title=title)
                parts.append(code_block_markdown(block))
            case Table():
                parts.append(table(block))
            case Chart():
                parts.append(table(block.table()))
            case Notice(text=text, level=level):
                parts.append(f"{NOTICE_EMOJI[level]} {data(text)}")
            case Buttons():
                pass
            case _:
                raise TypeError(f"unhandled reply block {block!r}")
    return "\n\n".join(parts)


def stream_markdown(reply: Reply, *, final: bool, prose: Callable[[str, bool], str] | None = None,
                    data: Callable[[str], str] = _same, table: Callable[[Table], str] = table_markdown) -> str:
    """The turn as streamed Markdown (no status, so it only grows). While the turn runs, a trailing
    code block is left open so that its next output line is an append, not a rewrite."""
    text = reply_to_markdown(reply, prose=prose, data=data, table=table, running=not final)
    if final:
        return text
    tail = next((b for b in reversed(reply.blocks) if not isinstance(b, Status | Buttons)), None)
    if isinstance(tail, CodeBlock) and text.endswith("```") and not (tail.omitted and tail.role == "code"):
        # Drop the closing fence (and keep the newline before it) so the next output line appends.
        return text[: text.rfind("```")]
    return text


def utf8_len(text: str) -> int:
    """Size of ``text`` in UTF-8 bytes: never less than its length in code points or UTF-16 units,
    so a limit kept in bytes holds however the receiving platform counts."""
    return len(text.encode("utf-8", "surrogatepass"))


def fit(text: str, limit: int, measure: Callable[[str], int] = len) -> str:
    """The longest prefix of ``text`` whose ``measure`` is at most ``limit`` (whole code points)."""
    if measure(text) <= limit:
        return text
    if measure is len:
        return text[:limit]
    lo, hi = 0, min(len(text), limit)  # every measure here counts a code point as at least 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(text[:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def clip(text: str, limit: int, measure: Callable[[str], int] = len) -> str:
    """``text`` if its ``measure`` is at most ``limit``, else the longest prefix that fits with ``…``
    appended (the result, ellipsis included, stays within ``limit``)."""
    if measure(text) <= limit:
        return text
    return fit(text, limit - measure("…"), measure) + "…"


def split_text(text: str, limit: int, measure: Callable[[str], int] = len) -> list[str]:
    """Split ``text`` into pieces whose ``measure`` (default: characters) is at most ``limit``, losing nothing.

    Pass ``measure=utf8_len`` for limits in bytes. Cuts prefer a line break, then a space; a code
    fence open at a cut is closed and reopened in the next piece so every piece renders on its own.
    Joining the pieces (minus those added fence lines) gives back the text. Cuts fall between code
    points, so no character is ever split.
    """
    if limit < 16:
        raise ValueError("limit too small to split safely")
    pieces: list[str] = []
    rest = text
    reopen = ""
    while rest:
        budget = limit - measure(reopen)
        if measure(rest) <= budget:
            pieces.append(reopen + rest)
            break
        # Leave room to close a fence we may be inside of.
        window = fit(rest, budget - 4, measure)
        cut = window.rfind("\n")
        if cut < len(window) // 3:
            cut = window.rfind(" ")
        if cut < len(window) // 3:
            cut = len(window)
        else:
            cut += 1  # keep the separator with the first piece
        head, rest = rest[:cut], rest[cut:]
        piece = reopen + head
        open_fence = _open_fence(piece)
        if open_fence is not None:
            closing = re.match(r"`+|~+", open_fence)
            piece = piece + ("" if piece.endswith("\n") else "\n") + (closing.group() if closing else "```")
            reopen = open_fence + "\n"
        else:
            reopen = ""
        pieces.append(piece)
    return pieces


def _open_fence(text: str) -> str | None:
    """The opening fence line if ``text`` ends inside a fenced block, else None."""
    opening: str | None = None
    for line in text.split("\n"):
        if _FENCE.match(line):
            opening = None if opening is not None else line.strip()
    return opening
