"""What the Converse model is told: the system prompt, the tool specs, and tool results.

Kept apart from the loop so the wording can change without touching control flow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.conversation import Attachment, Turn
from bot.datasets.model import DatasetMeta
from bot.events import (
    AgentEvent,
    CodeError,
    CodeOutput,
    DatasetProduced,
    FileProduced,
    Notice,
    TurnFailed,
)
from bot.workspace import human_size

RUN_PYTHON = "run_python"
RUN_SHELL = "run_shell"
LIST_FILES = "list_files"
PUBLISH_DATASET = "publish_dataset"

TOOL_SPECS: list[dict[str, Any]] = [
    {"toolSpec": {
        "name": RUN_PYTHON,
        "description": (
            "Run Python code in this conversation's Python environment. The working directory is the "
            "conversation workspace. Variables persist between calls while the environment lives. "
            "Returns stdout, stderr, errors and the files the code created or changed."
        ),
        "inputSchema": {"json": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "Python source to run."}},
            "required": ["code"],
        }},
    }},
    {"toolSpec": {
        "name": RUN_SHELL,
        "description": "Run a shell command in the workspace (e.g. pip install, unzip, head). Returns its output.",
        "inputSchema": {"json": {
            "type": "object",
            "properties": {"command": {"type": "string", "description": "The command line."}},
            "required": ["command"],
        }},
    }},
    {"toolSpec": {
        "name": LIST_FILES,
        "description": "List the files in the workspace with their sizes.",
        "inputSchema": {"json": {"type": "object", "properties": {}}},
    }},
    {"toolSpec": {
        "name": PUBLISH_DATASET,
        "description": (
            "Show an existing workspace file (csv, tsv, parquet, jsonl, xlsx) to the user as a pageable "
            "table. Files you create are shown automatically; use this for files that already existed."
        ),
        "inputSchema": {"json": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "File path relative to the workspace."},
                "name": {"type": "string", "description": "Short name for the table."},
            },
            "required": ["path"],
        }},
    }},
]

_INSTRUCTIONS = """\
You are datathread, a data analyst working inside a chat thread (Slack, Teams or a terminal).
You have a Python environment (pandas, numpy, matplotlib and the usual libraries) whose working \
directory is this conversation's workspace. Use the tools to run code instead of guessing numbers.

How results reach the user:
- Tables: write them to the workspace as .csv or .parquet files{frames}. Each new table file becomes \
a dataset the user can page, sort and chart in the thread, so never paste long tables into your answer.
- Charts: save them as PNG files with matplotlib (plt.savefig("name.png")); they are posted into \
the thread. Do not call plt.show().
- Printed output is shown to the user as code output; keep it brief.

If code fails, read the error, fix the code and run it again. Keep the final answer short (a few \
sentences or bullets in Markdown): the thread already shows the tables and charts, so describe \
what they show and name the files."""


def _attachment_line(a: Attachment, workspace_name: str) -> str:
    return f"- {workspace_name} ({human_size(a.size)}, {a.media_type})" + (
        f", uploaded as {a.name!r}" if a.name != workspace_name else ""
    )


def _dataset_line(d: DatasetMeta) -> str:
    columns = ", ".join(f"{c.name} ({c.type})" for c in d.columns[:40])
    more = f", and {len(d.columns) - 40} more" if len(d.columns) > 40 else ""
    source = f" from {d.source}" if d.source else ""
    return f"- {d.name}{source}: {d.rows} rows; columns {columns}{more}"


async def system_prompt(turn: Turn, *, displays_frames: bool = False) -> str:
    """The instructions plus what this conversation has now: attached files and datasets.

    ``displays_frames``: the executor turns a displayed DataFrame into a dataset (the local kernel).
    """
    parts = [_INSTRUCTIONS.format(frames=" (or display a DataFrame as a cell's last expression)"
                                  if displays_frames else "")]
    if turn.attachments:
        lines = [
            _attachment_line(a, turn.workspace.relative(a.path)) for a in turn.attachments
        ]
        parts.append("Files the user attached to this message (in the workspace):\n" + "\n".join(lines))
    try:
        datasets: Sequence[DatasetMeta] = await turn.datasets.list()
    except Exception:  # the prompt must not fail because a catalogue is unreadable
        datasets = ()
    if datasets:
        parts.append("Datasets in this conversation:\n" + "\n".join(_dataset_line(d) for d in datasets[-30:]))
    return "\n\n".join(parts)


def user_message(turn: Turn) -> dict[str, Any]:
    """The user's turn as a Converse message; attachments are named so history remembers them."""
    text = turn.text.strip() or "(no text)"
    if turn.attachments:
        names = ", ".join(turn.workspace.relative(a.path) for a in turn.attachments)
        text += f"\n\n[Attached files: {names}]"
    return {"role": "user", "content": [{"text": text}]}


def clip(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, keeping the head and the tail (errors sit at the end)."""
    if len(text) <= limit:
        return text
    marker = f"\n... [{len(text) - limit} characters cut] ...\n"
    keep = max(0, limit - len(marker))
    head = keep * 2 // 5
    return text[:head] + marker + text[len(text) - (keep - head):]


@dataclass
class ToolOutcome:
    """What one tool call produced, collected from its events, summarised for the model."""

    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    errors: list[CodeError] = field(default_factory=list)
    files: list[FileProduced] = field(default_factory=list)
    datasets: list[DatasetProduced] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    failed: TurnFailed | None = None

    def add(self, event: AgentEvent) -> None:
        match event:
            case CodeOutput(text=text, stream="stderr"):
                self.stderr.append(text)
            case CodeOutput(text=text):
                self.stdout.append(text)
            case CodeError():
                self.errors.append(event)
            case FileProduced():
                self.files.append(event)
            case DatasetProduced():
                self.datasets.append(event)
            case Notice(text=text):
                self.notices.append(text)
            case TurnFailed():
                self.failed = event
            case _:
                pass

    @property
    def status(self) -> str:
        return "error" if self.errors or self.failed else "success"

    def summary(self, limit: int) -> str:
        """Plain text for the ``toolResult``; each part is clipped so the whole stays near ``limit``."""
        sections: list[tuple[str, str]] = []
        if self.stdout:
            sections.append(("stdout", "".join(self.stdout)))
        if self.stderr:
            sections.append(("stderr", "".join(self.stderr)))
        for err in self.errors:
            sections.append(("error", f"{err.ename}: {err.evalue}\n{err.traceback}".strip()))
        if self.files:
            sections.append(("new files", "\n".join(f"{f.name} ({human_size(f.size)})" for f in self.files)))
        if self.datasets:
            sections.append(("datasets shown to the user", "\n".join(
                f"{d.dataset.name}: {d.dataset.rows} rows, columns "
                + ", ".join(c.name for c in d.dataset.columns[:30])
                for d in self.datasets
            )))
        if self.notices:
            sections.append(("notices", "\n".join(self.notices)))
        if self.failed:
            sections.append(("environment failure", self.failed.message))
        if not sections:
            return "(finished with no output)"
        share = max(200, limit // len(sections))
        return "\n\n".join(f"[{title}]\n{clip(body, share)}" for title, body in sections)
