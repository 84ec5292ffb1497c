"""Readers' verdicts on answers: the record the state store keeps and the export formats.

A verdict is keyed by (conversation, turn, user): a second click by the same reader on the same
answer replaces the first. ``export`` writes them as CSV or JSON Lines for ``datathread feedback``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, TextIO

if TYPE_CHECKING:  # the store's protocol names FeedbackRecord: import it for types only
    from bot.storage.base import StateStore

ExportFormat = Literal["csv", "jsonl"]
FIELDS = ("conversation", "turn", "user", "at", "positive", "comment", "platform")


@dataclass(frozen=True)
class FeedbackRecord:
    """One reader's verdict on one answer. ``at`` is timezone-aware (UTC)."""

    conversation: str
    turn: str
    user: str
    at: datetime
    positive: bool
    comment: str = ""
    platform: str = ""


def export(records: Iterable[FeedbackRecord], fmt: ExportFormat) -> str:
    """``records`` as CSV (a header row first) or JSON Lines; times in ISO 8601."""
    rows = [{**asdict(r), "at": r.at.isoformat()} for r in records]
    if fmt == "jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def parse_since(text: str) -> timedelta:
    """A look-back like ``7d``, ``12h``, ``30m`` or ``2w``; ``ValueError`` with a short message otherwise."""
    units = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
    number, unit = text[:-1].strip(), text[-1:].lower()
    if unit not in units or not number.isdigit():
        raise ValueError(f"--since takes a number and a unit (m, h, d or w), like 7d; not {text!r}")
    return timedelta(seconds=int(number) * units[unit])


async def export_feedback(state: StateStore, out: TextIO, *, since: str | None, fmt: ExportFormat) -> int:
    """Write the verdicts recorded in the last ``since`` (all without it) to ``out``; their count."""
    start = datetime.now(UTC) - parse_since(since) if since else None
    records = await state.feedback(since=start)
    out.write(export(records, fmt))
    return len(records)
