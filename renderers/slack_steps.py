"""A turn's agent steps as Slack streaming chunks: ``task_update`` per step, one ``plan_update``.

Pure. Slack (slack-sdk >= 3.40) shows ``task_update`` chunks of one stream as tasks — a timeline,
or a plan when the stream was started with ``task_display_mode="plan"`` — and updates a task sent
again under the same ``id``. Step fields map as: rationale -> ``title``, code -> ``details``,
output -> ``output``, an error -> status ``error``. Text is escaped like the rest of a turn
(``& < >``), so no step can mention or notify anyone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.reply import Reply, Step
from bot.steps import without_steps
from renderers.markdown import fit
from renderers.slack import escape, stream_text

#: Characters kept of a task's details / output (the full code and output stay in the workspace's
#: code/ folder and the fallback text): the task view is a summary, not a log.
TASK_TEXT_CHARS = 3000
TITLE_CHARS = 250
#: How a stream shows a turn's tasks.
DISPLAY_MODE = "plan"


def _clip(text: str, limit: int) -> str:
    text = escape(text)
    return text if len(text) <= limit else fit(text, limit - 1) + "…"


def task_chunk(step: Step) -> dict[str, Any]:
    """One step as a ``task_update`` chunk."""
    chunk: dict[str, Any] = {"type": "task_update", "id": step.id, "title": _clip(step.title, TITLE_CHARS),
                             "status": step.status}
    if step.details:
        chunk["details"] = _clip(step.details, TASK_TEXT_CHARS)
    if step.output:
        chunk["output"] = _clip(step.output, TASK_TEXT_CHARS)
    return chunk


def plan_title(count: int) -> str:
    return f"{count} steps"


def step_chunks(steps: Sequence[Step], sent: Mapping[str, Step]) -> list[dict[str, Any]]:
    """The chunks that bring a stream showing ``sent`` (id -> step as last sent) to ``steps``: a
    ``plan_update`` when a multi-step turn's step count changed, then each new or changed step."""
    chunks: list[dict[str, Any]] = []
    if len(steps) >= 2 and len(steps) != len(sent):
        chunks.append({"type": "plan_update", "title": plan_title(len(steps))})
    chunks.extend(task_chunk(step) for step in steps if sent.get(step.id) != step)
    return chunks


def text_beside_steps(reply: Reply, *, final: bool) -> str:
    """The stream text of a turn whose steps show as tasks: everything but the steps (the answer,
    notices, datasets), as ``renderers.slack.stream_text`` renders it."""
    return stream_text(without_steps(reply), final=final)
