"""Pure rendering of the neutral ``Reply`` into Slack Block Kit messages (plus fallback text).

Limits are named once below and kept in UTF-8 bytes (Slack documents "characters"; bytes are
never fewer, so multi-byte text stays inside however Slack counts). A reply that does not fit one
message becomes several, in order; nothing is cut mid-character or dropped. Slack's three control
characters (``& < >``) are escaped everywhere, code included: Slack shows ``&lt;`` in code as
``<`` (it stores users' code the same way), and an unescaped ``<!channel>`` in a table cell or
program output would otherwise notify a whole channel. Select option values are limited to 150 characters by
Slack; the core keeps its tokens shorter than that (``bot.tokens``), and an option whose value
would not fit is left out rather than sent truncated (a truncated token could never verify).
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from bot.datasets.model import ChartData
from bot.intents import Feedback
from bot.reply import Button, Buttons, Chart, CodeBlock, Markdown, Notice, Reply, Select, Status, Table
from renderers.markdown import (
    clip,
    fence,
    fit,
    more_lines,
    reply_to_markdown,
    split_text,
    stream_markdown,
    utf8_len,
)
from renderers.slack_markdown import answer_markdown

# ---- Slack limits (https://docs.slack.dev/reference/block-kit), text limits in UTF-8 bytes ------
SECTION_TEXT = 3000
CONTEXT_TEXT = 3000
MARKDOWN_BLOCK = 12_000  # all markdown blocks of one message; also per chat.*Stream call
#: Longest text kept in one streamed message; past it the turn continues in edited messages.
STREAM_BYTES = 3 * MARKDOWN_BLOCK
MAX_BLOCKS = 50
MESSAGE_TEXT = 40_000
TABLE_ROWS = 100  # including the header row
TABLE_COLUMNS = 20
#: ``data_table`` (2026-05): 2–101 rows with the header, 1–20 columns, ≤ 10,000 characters of cells.
DATA_TABLE_ROWS = 101
DATA_TABLE_CHARS = 10_000
CAPTION_TEXT = 150
#: ``data_visualization`` (2026-06, docs.slack.dev/reference/block-kit/blocks/data-visualization-block):
#: title and axis labels ≤ 50 characters, category / segment / series labels ≤ 20, 1–6 series (pie:
#: 1–6 segments, each > 0), at most 20 data points a series, at most 2 such blocks a message.
CHART_TITLE = 50
CHART_LABEL = 20
CHART_SERIES = 6
CHART_POINTS = 20
CHARTS_PER_MESSAGE = 2
ACTIONS_ELEMENTS = 25
SELECT_OPTIONS = 100
OPTION_VALUE = 150
OPTION_TEXT = 75
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
PLACEHOLDER_TEXT = 150
#: Fallback ``text`` kept short: it is what notifications and screen readers show.
FALLBACK_TEXT = 300

#: Prefix of every action_id we emit: ``datathread:<intent kind>:<n>`` (``bot.intents.KINDS``).
ACTION_PREFIX = "datathread:"
NOTICE_EMOJI = {"info": ":information_source:", "warning": ":warning:", "error": ":x:"}
STATUS_EMOJI = {"working": ":hourglass_flowing_sand:", "done": ":white_check_mark:", "failed": ":x:"}

Block = dict[str, Any]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlackMessage:
    """One Slack message: ``blocks`` for chat.postMessage / chat.update, ``text`` as the fallback."""

    blocks: tuple[Block, ...]
    text: str


# ---- Markdown -> mrkdwn --------------------------------------------------------------------

# Fenced blocks (an unclosed fence runs to the end) and code spans are left untouched.
_CODE = re.compile(r"(```.*?(?:```|\Z)|`[^`\n]+`)", re.S)
#: A fenced block on its own lines, with backticks or tildes (an unclosed one runs to the end).
_FENCED = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})[^\n`]*\n(?P<body>.*?)(?:^ {0,3}(?P=fence)[ \t]*$|\Z)",
                     re.S | re.M)
_FENCE_LANG = re.compile(r"^```[\w+#.-]+\n")
#: ``[label](url)`` or ``![alt](url)``; the URL may hold balanced parentheses (Wikipedia's do).
_LINK = re.compile(r"(!?)\[([^\]\n]*)\]\(((?:[^()\s]|\([^()\s]*\))+)\)")
_AUTOLINK = re.compile(r"&lt;((?:https?|mailto):\S+?)&gt;")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.M)
_BULLET = re.compile(r"^(\s*)[-*+]\s+(?=\S)", re.M)
_BOLD_ITALIC = re.compile(r"\*\*\*(?=\S)(.+?)(?<=\S)\*\*\*")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_ITALIC = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_HRULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$", re.M)
#: Two or more lines that are rows of a Markdown table.
_TABLE_RUN = re.compile(r"(?:^[ \t]*\|.*\|[ \t]*(?:\n|\Z)){2,}", re.M)
_TABLE_RULE = re.compile(r"^\s*\|?[\s:|-]*-[\s:|-]*$")
_B = "\x01"  # placeholder for a bold asterisk, so the italic pass does not take it
_KEPT = re.compile("\x02(\\d+)\x03")  # placeholder for code kept out of the prose passes


def escape(text: str) -> str:
    """Escape Slack's three control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(match: re.Match[str]) -> str:
    # An image is a link to it (``!<url|alt>`` would show a stray "!").
    label = match.group(2) or match.group(3)
    return f"<{match.group(3)}|{label.replace('|', '¦')}>"


def _prose(text: str) -> str:
    text = escape(text)
    text = _AUTOLINK.sub(r"<\1>", text)
    text = _LINK.sub(_link, text)
    text = _HRULE.sub("──────────", text)
    text = _HEADING.sub(lambda m: f"{_B}{m.group(1).replace('**', '')}{_B}" if m.group(1) else "", text)
    text = _BULLET.sub(r"\1• ", text)
    text = _BOLD_ITALIC.sub(lambda m: f"{_B}_{m.group(1)}_{_B}", text)
    text = _BOLD.sub(lambda m: f"{_B}{m.group(1) or m.group(2)}{_B}", text)
    text = _ITALIC.sub(r"_\1_", text)
    text = _STRIKE.sub(r"~\1~", text)
    return text.replace(_B, "*")


def _cells(row: str) -> tuple[str, ...]:
    inner = row.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return tuple(c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner))


def markdown_table(run: str) -> Table:
    """The rows of a Markdown table (its rule line left out) as a ``Table``."""
    rows = [_cells(line) for line in run.strip("\n").split("\n") if not _TABLE_RULE.match(line)]
    header, *body = rows or [()]
    width = len(header)
    return Table(header, tuple(tuple((*r, *("",) * width)[:width]) for r in body))


def markdown_to_mrkdwn(text: str) -> str:
    """CommonMark-ish Markdown → Slack mrkdwn. Code spans and fenced blocks (backticks or tildes)
    keep their text (only ``& < >`` escaped, which Slack shows as typed; a fence's language tag is
    dropped, as Slack would show it as code); a Markdown table becomes an aligned code block.
    Code is set aside while the prose is converted, so bold or italic around inline code works."""
    kept: list[str] = []

    def keep(code: str) -> str:
        kept.append(code)
        return f"\x02{len(kept) - 1}\x03"

    def fenced(m: re.Match[str]) -> str:
        body, closed = m.group("body"), m.group(0).rstrip().endswith(m.group("fence"))
        if closed:
            return keep("```\n" + escape(body) + "```") + ("\n" if m.group(0).endswith("\n") else "")
        return keep("```\n" + escape(body))

    text = _FENCED.sub(fenced, text)
    text = _CODE.sub(lambda m: keep(escape(_FENCE_LANG.sub("```\n", m.group(0)) if m.group(0).startswith("```")
                                           else m.group(0))), text)
    text = _TABLE_RUN.sub(lambda m: keep(f"```\n{escape(fixed_width(markdown_table(m.group(0))))}\n```")
                          + ("\n" if m.group(0).endswith("\n") else ""), text)
    return _KEPT.sub(lambda m: kept[int(m.group(1))], _prose(text))


# ---- blocks --------------------------------------------------------------------------------


def _text_sections(mrkdwn: str) -> list[Block]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": piece}}
            for piece in split_text(mrkdwn, SECTION_TEXT, utf8_len) if piece.strip()]


def _code_sections(block: CodeBlock) -> list[Block]:
    body = escape(block.text) if block.text.strip() else " "
    ticks = "```"
    out: list[Block] = []
    if block.title:
        out += _text_sections(f"*{escape(block.title)}*")
    note = f"_{escape(more_lines(block.omitted, block.role))}_" if block.omitted else ""
    if note and block.role != "code":
        out.append(_context(note))
    out += _text_sections(f"{ticks}\n{body}\n{ticks}")
    if note and block.role == "code":
        out.append(_context(note))
    return out


def _context(mrkdwn: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": fit(mrkdwn, CONTEXT_TEXT, utf8_len)}]}


def _cell(text: str) -> dict[str, str]:
    # raw_text cells need some text; an empty (null) cell shows as blank.
    return {"type": "raw_text", "text": text if text else " "}


def table_block(table: Table) -> Block:
    """A Slack ``table`` block: header row first, at most 99 data rows, at most 20 columns."""
    rows = [[_cell(c) for c in table.columns]]
    rows += [[_cell(c) for c in row] for row in table.rows[: TABLE_ROWS - 1]]
    settings = [{"align": "right" if i < len(table.numeric) and table.numeric[i] else "left"}
                for i in range(len(table.columns))]
    return {"type": "table", "rows": rows, "column_settings": settings}


#: How a ``Table`` is drawn: Slack's ``data_table`` (client-side sort and paging of the rows it
#: carries), the older ``table`` block, or fixed-width text; the surface steps down on ``invalid_blocks``.
TableStyle = Literal["data_table", "table", "text"]
TABLE_STYLES: tuple[TableStyle, ...] = ("data_table", "table", "text")


def data_table_block(table: Table, caption: str) -> Block | None:
    """A ``data_table`` block of the whole page, or ``None`` when the page is outside its limits.

    Shape as documented (docs.slack.dev/reference/block-kit/blocks/data-table-block): ``caption``,
    ``rows`` (header first) and ``page_size`` — Slack shows 5 rows per page unless told, and our page
    is meant to be seen whole. It has no ``column_settings`` (that is the ``table`` block's). Cells of
    numeric columns are ``raw_number`` so Slack's own sort orders them as numbers."""
    rows = [table.columns, *table.rows]
    if not table.columns or len(table.columns) > TABLE_COLUMNS or len(rows) > DATA_TABLE_ROWS:
        return None
    if sum(len(c) for row in rows for c in row) > DATA_TABLE_CHARS:
        return None
    numeric = [i < len(table.numeric) and table.numeric[i] for i in range(len(table.columns))]
    body = [[_number_cell(c) if numeric[i] else _cell(c) for i, c in enumerate(row)] for row in table.rows]
    return {"type": "data_table", "caption": clip(caption or "Rows", CAPTION_TEXT),
            "page_size": max(1, min(len(table.rows), DATA_TABLE_ROWS - 1)),
            "rows": [[_cell(c) for c in table.columns], *body]}


def _number_cell(text: str) -> dict[str, Any]:
    """A ``raw_number`` cell (its ``value`` sorts, its ``text`` shows) when ``text`` reads as a finite
    number, else the ``raw_text`` cell: a blank or ``inf`` in a numeric column stays text."""
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return _cell(text)
    if not math.isfinite(value):
        return _cell(text)
    return {"type": "raw_number", "value": _number(value), "text": text}


def data_visualization_block(data: ChartData) -> Block:
    """A ``data_visualization`` block (untyped in slack-sdk 3.48: a dict). Pie: ``segments`` of
    label / value; bar, line, area: ``series`` of name / ``data`` points (label / value) with an
    ``axis_config`` naming the categories (each point's label is one of them) and the axis titles.
    Text fields are plain strings, so data shows as written; labels are fitted to Slack's 20
    characters and kept distinct (a point names its category by label)."""
    labels = _distinct_labels(data.categories[:CHART_POINTS])
    chart: dict[str, Any]
    if data.kind == "pie":
        values = data.series[0].values if data.series else ()
        pairs = zip(labels[:CHART_SERIES], values, strict=False)
        chart = {"type": "pie", "segments": [{"label": label, "value": _number(v)} for label, v in pairs if v > 0]}
    else:
        names = _distinct_labels(tuple(s.name or "value" for s in data.series[:CHART_SERIES]))
        axis: dict[str, Any] = {"categories": labels}
        if data.x_label:
            axis["x_label"] = clip(data.x_label, CHART_TITLE)
        if data.y_label:
            axis["y_label"] = clip(data.y_label, CHART_TITLE)
        chart = {"type": data.kind, "axis_config": axis,
                 "series": [{"name": name, "data": [{"label": label, "value": _number(v)}
                                                    for label, v in zip(labels, s.values, strict=False)]}
                            for name, s in zip(names, data.series, strict=False)]}
    return {"type": "data_visualization", "title": clip(data.title or "Chart", CHART_TITLE), "chart": chart}


def _distinct_labels(labels: tuple[str, ...]) -> list[str]:
    """Each label within ``CHART_LABEL`` characters, a clipped one that would repeat another made
    distinct by its position (``Northwest regio… 3``)."""
    out: list[str] = []
    for i, label in enumerate(labels):
        text = clip(label or " ", CHART_LABEL)
        if text in out:
            suffix = f" {i + 1}"
            text = clip(label, CHART_LABEL - len(suffix)) + suffix
        out.append(text)
    return out


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


def fixed_width(table: Table) -> str:
    """Columns padded to a common width, for tables Slack's table block cannot hold."""
    grid = [table.columns, *table.rows]
    widths = [max(len(r[i]) if i < len(r) else 0 for r in grid) for i in range(len(table.columns))]

    def line(row: tuple[str, ...]) -> str:
        cells = []
        for i, w in enumerate(widths):
            cell = row[i] if i < len(row) else ""
            numeric = i < len(table.numeric) and table.numeric[i]
            cells.append(cell.rjust(w) if numeric else cell.ljust(w))
        return "  ".join(cells).rstrip()

    return "\n".join([line(table.columns), "  ".join("-" * w for w in widths), *(line(r) for r in table.rows)])


def _table_blocks(table: Table, allow_table_block: bool) -> list[Block]:
    """A table block when it fits Slack's (≤ 20 columns); rows past its 99 follow as fixed-width
    text, so a page larger than a table block still shows every row. Wider tables: all text."""
    if allow_table_block and len(table.columns) <= TABLE_COLUMNS and table.columns:
        out = [table_block(table)]
        shown = TABLE_ROWS - 1
        if len(table.rows) > shown:
            out.append(_context(f"Rows {shown + 1}–{len(table.rows)} of this page:"))
            out += _code_sections_raw(fixed_width(Table(table.columns, table.rows[shown:], table.numeric)))
        return out
    return _code_sections_raw(fixed_width(table))


def _code_sections_raw(text: str) -> list[Block]:
    # Each piece is its own code block so every section renders as code.
    return [{"type": "section", "text": {"type": "mrkdwn", "text": f"```\n{piece}\n```"}}
            for piece in split_text(escape(text), SECTION_TEXT - 8, utf8_len)]


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit, utf8_len), "emoji": True}


def _feedback_block(buttons: Buttons) -> Block | None:
    """A 👍 / 👎 pair as Slack's own ``feedback_buttons`` in a ``context_actions`` block, else ``None``."""
    items = buttons.items
    if len(items) != 2 or not all(isinstance(b, Button) and isinstance(b.intent, Feedback) for b in items):
        return None
    good, bad = sorted(items, key=lambda b: not b.intent.positive)  # type: ignore[union-attr]
    return {"type": "context_actions", "elements": [{
        "type": "feedback_buttons", "action_id": f"{ACTION_PREFIX}{good.kind}:0",
        "positive_button": {"text": _plain("Good answer", BUTTON_TEXT), "accessibility_label": "Good answer",
                            "value": good.token[:BUTTON_VALUE]},  # type: ignore[union-attr]
        "negative_button": {"text": _plain("Bad answer", BUTTON_TEXT), "accessibility_label": "Bad answer",
                            "value": bad.token[:BUTTON_VALUE]},  # type: ignore[union-attr]
    }]}


def _action_blocks(buttons: Buttons) -> list[Block]:
    if (feedback := _feedback_block(buttons)) is not None:
        return [feedback]
    elements: list[Block] = []
    for n, item in enumerate(buttons.items):
        action_id = f"{ACTION_PREFIX}{item.kind}:{n}"
        if isinstance(item, Button):
            element: Block = {"type": "button", "text": _plain(item.label, BUTTON_TEXT),
                              "action_id": action_id, "value": item.token[:BUTTON_VALUE]}
            if item.style == "primary":
                element["style"] = "primary"
        elif isinstance(item, Select):
            options = []
            for opt in item.options[:SELECT_OPTIONS]:
                if len(opt.token) > OPTION_VALUE:
                    log.warning("select option %r dropped: its value is over Slack's limit", opt.label)
                    continue
                options.append({"text": _plain(opt.label, OPTION_TEXT), "value": opt.token})
            if not options:
                continue
            element = {"type": "static_select", "placeholder": _plain(item.label, PLACEHOLDER_TEXT),
                       "action_id": action_id, "options": options}
        else:
            raise TypeError(f"unhandled button {item!r}")
        elements.append(element)
    return [{"type": "actions", "elements": elements[i: i + ACTIONS_ELEMENTS]}
            for i in range(0, len(elements), ACTIONS_ELEMENTS)]


def status_block(status: Status) -> Block:
    return _context(f"{STATUS_EMOJI[status.state]} {escape(status.text)}")


def reply_blocks(reply: Reply, tables: TableStyle = "table") -> list[Block]:
    """All blocks of ``reply`` in order (possibly more than one message holds; see ``render``)."""
    blocks: list[Block] = []
    for block in reply.blocks:
        match block:
            case Markdown(text=text):
                blocks += _text_sections(markdown_to_mrkdwn(text))
            case Status():
                blocks.append(status_block(block))
            case CodeBlock():
                blocks += _code_sections(block)
            case Table():
                native = data_table_block(block, reply.summary) if tables == "data_table" else None
                blocks += [native] if native else _table_blocks(block, allow_table_block=tables != "text")
            case Chart(data=data):
                blocks.append(data_visualization_block(data))
            case Notice(text=text, level=level):
                for piece in split_text(markdown_to_mrkdwn(text), CONTEXT_TEXT - 20, utf8_len):
                    blocks.append(_context(f"{NOTICE_EMOJI[level]} {piece}"))
            case Buttons():
                blocks += _action_blocks(block)
            case _:
                raise TypeError(f"unhandled reply block {block!r}")
    return blocks


def _fallback(reply: Reply, blocks: list[Block]) -> str:
    if reply.summary:
        text = escape(reply.summary)  # notifications parse it too: data never mentions anyone
    else:
        text = next((b["text"]["text"] for b in blocks if b["type"] == "section"), "") or "datathread"
    return clip(text, FALLBACK_TEXT)


def render(reply: Reply, *, nonce: str | None = None, tables: TableStyle = "table") -> list[SlackMessage]:
    """``reply`` as one or more Slack messages, each within the block and table limits.

    Every block gets a fresh ``block_id`` (``nonce`` + index) so ``chat.update`` always redraws;
    pass ``nonce`` only to make output deterministic in tests. Only one table block goes into
    one message: a second table starts a new message. ``tables`` says how tables are drawn.
    """
    nonce = nonce or uuid.uuid4().hex[:10]
    blocks = reply_blocks(reply, tables)
    if not blocks:
        blocks = [_context(escape(reply.summary or " "))]
    messages: list[list[Block]] = [[]]
    for block in blocks:
        current = messages[-1]
        has_table = any(b["type"] in ("table", "data_table") for b in current)
        charts = sum(b["type"] == "data_visualization" for b in current)
        if (len(current) >= MAX_BLOCKS or (block["type"] in ("table", "data_table") and has_table)
                or (block["type"] == "data_visualization" and charts >= CHARTS_PER_MESSAGE)):
            messages.append([])
        messages[-1].append(block)
    out: list[SlackMessage] = []
    for m, chunk in enumerate(messages):
        ided = tuple({**b, "block_id": f"dt-{nonce}-{m}-{i}"} for i, b in enumerate(chunk))
        out.append(SlackMessage(ided, _fallback(reply, list(chunk))))
    return out


# ---- a running turn: one look, streamed or edited --------------------------------------------


def _code_table(table: Table) -> str:
    return fence(escape(fixed_width(table)))


def _answer(text: str, running: bool) -> str:
    return answer_markdown(text, running=running)


def stream_text(reply: Reply, *, final: bool) -> str:
    """The turn as Slack streams it: standard Markdown, status left to the assistant status; every
    ``& < >`` escaped (``renderers.slack_markdown``), tables as aligned code blocks."""
    return stream_markdown(reply, final=final, prose=_answer, data=escape, table=_code_table)


def turn_messages(reply: Reply, *, final: bool) -> list[SlackMessage]:
    """A turn message as ``markdown`` blocks (the look of a stream, so a turn that falls back to
    editing looks the same) with its buttons under the last one; longer text in several messages."""
    text = reply_to_markdown(reply, prose=_answer, data=escape, table=_code_table)
    status = next((b for b in reply.blocks if isinstance(b, Status)), None)
    if not text.strip():  # nothing said yet: the status stands in (a message needs some text)
        text = f"_{escape(status.text)}_" if status else " "
    pieces = [p for p in split_text(text, MARKDOWN_BLOCK, utf8_len) if p.strip()] or [text]
    actions = button_blocks(reply)
    out = []
    for i, piece in enumerate(pieces):
        blocks = [{"type": "markdown", "text": piece}, *(actions if i == len(pieces) - 1 else ())]
        out.append(SlackMessage(tuple(blocks), clip(escape(reply.summary) if reply.summary else piece,
                                                    FALLBACK_TEXT)))
    return out


def button_blocks(reply: Reply) -> list[Block]:
    """Only the buttons of ``reply`` (what ``chat.stopStream`` attaches under a streamed text)."""
    return [blk for b in reply.blocks if isinstance(b, Buttons) for blk in _action_blocks(b)]
