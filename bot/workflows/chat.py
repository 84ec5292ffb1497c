"""Workflows in a chat thread: ``run NAME [k=v ...]`` and ``workflows``.

A run posts one live message per step (the engine's own live turn, opened with the step's name),
the datasets each step publishes as pageable messages with buttons and the files it makes, then a
one-line summary. Every step belongs to the thread's owner and is shown as the thread's own, so
its buttons, typed dataset commands and Stop work there. Workflows are read from ``folder``
(``DATATHREAD_HOME/workflows``); a step's ``files`` are copied from that folder too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from bot import events as ev
from bot.commands import RunWorkflow
from bot.engine import Engine
from bot.messages import ThreadKey
from bot.reply import Reply, notice
from bot.surface import Surface
from bot.workflows.record import RunOutcome, RunRecord, StepRecord
from bot.workflows.runner import ResumeError, WorkflowRunner
from bot.workflows.spec import Step, Workflow, WorkflowError, load_workflow

log = logging.getLogger(__name__)


def summary(workflow: Workflow, run: RunRecord) -> str:
    """One line: how the run ended, in how long, and the failing step's reason."""
    took = (run.finished - run.started).total_seconds() if run.finished else 0.0
    done = sum(s.status in ("succeeded", "reused") for s in run.steps)
    if run.status == "succeeded":
        return f"Workflow {workflow.name} finished: {done}/{len(run.steps)} steps in {took:.0f} s (run {run.id})."
    if run.status == "stopped":
        return f"Workflow {workflow.name} stopped after {done}/{len(run.steps)} steps (run {run.id})."
    return f"Workflow {workflow.name} failed: {run.error} (run {run.id})."


class _ThreadObserver:
    def __init__(self, surface: Surface) -> None:
        self.surface = surface

    async def step_started(self, run: RunRecord, step: Step) -> Surface:
        return self.surface

    async def step_ended(self, run: RunRecord, step: Step, record: StepRecord) -> None:
        return None  # the step's live message shows how it ended


class ChatWorkflows:
    """``bot.actions.WorkflowCommands`` over the workflow files in ``folder``."""

    def __init__(self, engine: Engine, folder: Path) -> None:
        self.engine = engine
        self.folder = folder

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.yml")) if self.folder.is_dir() else []

    def exists(self, name: str) -> bool:
        return (self.folder / f"{name}.yml").is_file()

    async def listing(self) -> Reply:
        names = self.names()
        if not names:
            return notice(f"There are no workflows yet. Put NAME.yml files in {self.folder} and run one "
                          "here with `run NAME`.")
        lines = []
        for name in names:
            try:
                wf = load_workflow(self.folder / f"{name}.yml")
                params = " ".join(f"{k}={v}" for k, v in wf.params.items())
                lines.append(f"• `{name}` — {len(wf.steps)} steps: {', '.join(s.id for s in wf.steps)}"
                             + (f" · parameters: `{params}`" if params else ""))
            except (WorkflowError, OSError):
                lines.append(f"• `{name}` — has mistakes: `run {name}` says which")
        return notice("Workflows (run one with `run NAME [name=value ...]`):\n" + "\n".join(lines))

    async def run(self, command: RunWorkflow, thread: ThreadKey, owner: str, surface: Surface) -> RunOutcome:
        """Run the workflow ``command`` names in ``thread``; every outcome is told in the thread."""
        workflow = await self._load(command.name)
        if isinstance(workflow, str):
            await surface.post(notice(workflow, "warning"))
            return RunOutcome(None, False, workflow)
        n = len(workflow.steps)

        def announce(step: Step, index: int) -> Sequence[ev.AgentEvent]:
            return [ev.Rationale(f"Step {index + 1}/{n} of {workflow.name}: {step.id}")]

        runner = WorkflowRunner(self.engine, base=self.folder, owner=owner, observer=_ThreadObserver(surface),
                                thread=thread, announce=announce)
        try:
            run = await runner.prepare(workflow, dict(command.params))
        except (WorkflowError, ResumeError) as exc:
            await surface.post(notice(_problems(exc), "warning"))
            return RunOutcome(None, False, _problems(exc))
        run = await runner.execute(workflow, run)
        line = summary(workflow, run)
        await surface.post(notice(line, "info" if run.status == "succeeded" else "warning"))
        return RunOutcome(run.id, run.status == "succeeded", line)

    async def _load(self, name: str) -> Workflow | str:
        """The workflow called ``name``, or what to tell the user instead."""
        path = self.folder / f"{name}.yml"
        if not path.is_file():
            known = ", ".join(f"`{n}`" for n in self.names()) or "none yet"
            return f"There is no workflow called {name}. Workflows: {known}."
        try:
            return load_workflow(path)
        except WorkflowError as exc:
            return _problems(exc)
        except OSError:
            log.warning("cannot read workflow %s", path, exc_info=True)
            return f"The workflow {name} cannot be read (details are in the log)."


def _problems(exc: Exception) -> str:
    if isinstance(exc, WorkflowError):
        listed = "\n".join(f"• {p}" for p in exc.problems)
        return f"The workflow {Path(exc.source).stem} cannot run:\n{listed}"
    return str(exc)
