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
from datetime import datetime
from typing import Literal

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
