"""Which attachments can go to the code interpreter, as ``sessionState.files`` (pure planning + reading).

Limits and types are the documented ones for ``BYTE_CONTENT`` files with ``useCase`` CODE_INTERPRETER.
Whatever does not fit gets a notice naming the file and the limit; the turn goes on with the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.conversation import Attachment
from bot.workspace import human_size, safe_filename

MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_TOTAL_BYTES = 10 * 1024 * 1024
MAX_FILES = 5
LIMIT_LABEL = "10 MB"  # 10,485,760 bytes, as AWS documents it

#: Extension -> media type sent to Bedrock (the documented code interpreter types).
MEDIA_TYPES: dict[str, str] = {
    ".csv": "text/csv",
    ".xls": "application/vnd.ms-excel",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".yaml": "application/x-yaml",
    ".yml": "application/x-yaml",
    ".json": "application/json",
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".html": "text/html",
    ".htm": "text/html",
    ".md": "text/markdown",
    ".txt": "text/plain",
    ".pdf": "application/pdf",
}
SUPPORTED = "CSV, XLS, XLSX, YAML, JSON, DOC, DOCX, HTML, MD, TXT, PDF"


@dataclass(frozen=True)
class PlannedFile:
    attachment: Attachment
    name: str  # ASCII-safe name sent to Bedrock
    media_type: str


@dataclass(frozen=True)
class AttachmentPlan:
    accepted: tuple[PlannedFile, ...]
    rejected: tuple[str, ...]  # one user-facing message per file left out


def plan_attachments(attachments: Sequence[Attachment]) -> AttachmentPlan:
    """Keep attachments in order while they fit; explain every one left out."""
    accepted: list[PlannedFile] = []
    rejected: list[str] = []
    total = 0
    names: set[str] = set()
    for att in attachments:
        ext = Path(att.name).suffix.lower() or att.path.suffix.lower()
        media = MEDIA_TYPES.get(ext)
        if media is None:
            rejected.append(f"{att.name} was not sent to the agent: the code interpreter accepts {SUPPORTED} files.")
        elif att.size == 0:
            rejected.append(f"{att.name} was not sent to the agent: it is empty.")
        elif att.size > MAX_FILE_BYTES:
            rejected.append(
                f"{att.name} was not sent to the agent: it is {human_size(att.size)}, "
                f"over the {LIMIT_LABEL} limit per file."
            )
        elif len(accepted) >= MAX_FILES:
            rejected.append(f"{att.name} was not sent to the agent: at most {MAX_FILES} files go with one message.")
        elif total + att.size > MAX_TOTAL_BYTES:
            rejected.append(
                f"{att.name} was not sent to the agent: the files of one message may be at most "
                f"{LIMIT_LABEL} in total."
            )
        else:
            name = _unique(safe_filename(att.name), names)
            accepted.append(PlannedFile(att, name, media))
            total += att.size
    return AttachmentPlan(tuple(accepted), tuple(rejected))


def _unique(name: str, taken: set[str]) -> str:
    stem, dot, ext = name.partition(".")
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}-{n}{dot}{ext}"
    taken.add(candidate)
    return candidate


async def session_files(plan: AttachmentPlan) -> list[dict[str, Any]]:
    """``sessionState.files`` entries for the accepted attachments (bytes read off the loop)."""
    out: list[dict[str, Any]] = []
    for item in plan.accepted:
        data = await asyncio.to_thread(item.attachment.path.read_bytes)
        out.append({
            "name": item.name,
            "source": {"sourceType": "BYTE_CONTENT", "byteContent": {"mediaType": item.media_type, "data": data}},
            "useCase": "CODE_INTERPRETER",
        })
    return out
