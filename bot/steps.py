"""A turn's blocks grouped into agent steps: rationale -> title, code -> details, output -> output.

Pure. ``group_steps`` is called by the presenter on a turn's final block list; surfaces that show
steps as tasks (Slack's ``task_update`` chunks) take the steps and ``without_steps`` for the text,
every other surface keeps rendering the blocks as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from bot.reply import Block, CodeBlock, Markdown, Notice, Reply, Step, StepStatus

#: Longest step title: the rationale's first line, clipped (the whole rationale goes to details).
TITLE_CHARS = 120
UNTITLED = "Running code"


@dataclass
class _Open:
    rationale: list[str] = field(default_factory=list)
    code: str = ""
    output: list[str] = field(default_factory=list)
    error: bool = False
    blocks: list[int] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.blocks


def _title(rationale: str) -> str:
    first = next((line.strip() for line in rationale.splitlines() if line.strip()), "")
    return first if len(first) <= TITLE_CHARS else first[: TITLE_CHARS - 1].rstrip() + "…"


def _step(number: int, s: _Open, status: StepStatus) -> Step:
    rationale = "\n".join(s.rationale).strip()
    title = _title(rationale) or UNTITLED
    details = "\n\n".join(p for p in (rationale if rationale != title else "", s.code) if p)
    return Step(f"step-{number}", title, "error" if s.error else status, details, "\n".join(s.output),
                tuple(s.blocks))


def group_steps(blocks: Sequence[Block], answer: int | None, *, last: StepStatus = "complete") -> tuple[Step, ...]:
    """The agent steps among ``blocks`` (``answer`` is the index of the answer's Markdown, never a
    step). A step is a rationale followed by code and its output or error; a step without code
    (a rationale alone) is a step too. The last step has status ``last`` (``in_progress`` while
    the turn runs, ``error`` when it was stopped or failed), every earlier one ``complete``; an
    error block makes its step ``error``. Step markers (``Step N`` notices) belong to the step
    they open; other notices stay in the text."""
    found: list[_Open] = []
    current = _Open()
    for i, block in enumerate(blocks):
        match block:
            case Markdown(text=text) if i != answer:
                if current.code or current.output or current.error:
                    found.append(current)
                    current = _Open()
                current.rationale.append(text)
                current.blocks.append(i)
            case CodeBlock(role="code", text=text):
                if current.code:
                    found.append(current)
                    current = _Open()
                current.code = text
                current.blocks.append(i)
            case CodeBlock(role=role, text=text):
                current.output.append(text)
                current.error = current.error or role == "error"
                current.blocks.append(i)
            case Notice(text=text, level="info") if text.startswith("Step ") and text[5:].isdigit():
                if not current.empty:
                    found.append(current)
                    current = _Open()
                current.blocks.append(i)
            case _:
                pass
    if not current.empty:
        found.append(current)
    found = [s for s in found if s.code or s.output or s.error or s.rationale]
    final = len(found) - 1
    return tuple(_step(n + 1, s, last if n == final else "complete") for n, s in enumerate(found))


def without_steps(reply: Reply) -> Reply:
    """``reply`` with its steps' blocks left out: the text beside steps shown as tasks."""
    hidden = {i for step in reply.steps for i in step.blocks}
    if not hidden:
        return reply
    return replace(reply, blocks=tuple(b for i, b in enumerate(reply.blocks) if i not in hidden))
