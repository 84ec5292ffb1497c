"""``datathread run FILE.yml`` and ``datathread runs``: workflows in the terminal.

Each step is shown live the way ``datathread chat`` shows a turn (same presenter and terminal
renderer, through ``ConsoleSurface``); at the end the datasets of the last steps are printed as
pages. The exit status is 0 only when every step succeeded. Ctrl-C stops the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import signal
from collections.abc import Mapping
from pathlib import Path

from adapters.console.surface import ConsoleOutput, ConsoleSurface
from bot.datasets.model import DatasetError
from bot.engine import Engine
from bot.surface import Surface
from bot.workflows.record import RunRecord, StepRecord
from bot.workflows.runner import ResumeError, WorkflowRunner, step_thread
from bot.workflows.spec import Step, Workflow, WorkflowError

MARKS = {"succeeded": "✓", "reused": "↺", "failed": "✗", "stopped": "■", "skipped": "·", "running": "…",
         "pending": "·"}


class ConsoleRunObserver:
    """Prints a header before each step and a one-line result after it."""

    def __init__(self, output: ConsoleOutput, workflow: Workflow) -> None:
        self.output = output
        self.workflow = workflow

    async def step_started(self, run: RunRecord, step: Step) -> Surface:
        number = [s.id for s in self.workflow.steps].index(step.id) + 1
        self.output.write_lines(["", f"── step {number}/{len(self.workflow.steps)}: {step.id} ──"])
        return ConsoleSurface(self.output)

    async def step_ended(self, run: RunRecord, step: Step, record: StepRecord) -> None:
        self.output.write_lines([step_line(record)])


def step_line(record: StepRecord) -> str:
    """``✓ extract: sales`` / ``✗ summarise failed: NameError: x``."""
    mark = MARKS.get(record.status, "·")
    if record.status == "failed":
        return f"  {mark} {record.id} failed: {record.error}"
    outputs = ", ".join(record.outputs)
    return f"  {mark} {record.id} {record.status}" + (f": {outputs}" if outputs else "")


def results(workflow: Workflow, run: RunRecord) -> list[tuple[str, str, str]]:
    """``(step, dataset name, dataset id)`` of the run's results: the outputs no later step reads or,
    when every output is read on, those of the last step that has any."""
    read = {(i.step, i.dataset) for s in workflow.steps for i in s.inputs}
    produced = [(r.id, name, dataset_id) for r in run.steps for name, dataset_id in r.outputs.items()]
    unread = [p for p in produced if (p[0], p[1]) not in read]
    if unread or not produced:
        return unread
    last = produced[-1][0]
    return [p for p in produced if p[0] == last]


async def run_workflow(engine: Engine, workflow: Workflow, params: Mapping[str, str], *,
                       resume_from: str | None = None, base: Path | None = None,
                       output: ConsoleOutput | None = None) -> int:
    """Run ``workflow`` in the terminal; the exit status (0 all steps succeeded, 1 not, 2 unusable request)."""
    output = output or ConsoleOutput()
    runner = WorkflowRunner(engine, base=base or Path.cwd(), owner=getpass.getuser(),
                            observer=ConsoleRunObserver(output, workflow))
    try:
        run = await runner.prepare(workflow, params, resume_from)
    except (WorkflowError, ResumeError) as exc:
        output.write_lines([f"datathread: {exc}"])
        return 2
    reused = [s.id for s in run.steps if s.status == "reused"]
    output.write_lines([f"workflow {workflow.name} · run {run.id}"
                        + (f" · reusing {', '.join(reused)} from run {run.steps[0].reused_from}" if reused else "")])
    loop = asyncio.get_running_loop()

    def on_interrupt() -> None:
        if runner.stop():
            output.write_lines(["  ! stopping the run…"])

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, on_interrupt)
    try:
        run = await runner.execute(workflow, run)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
        output.clear_spinner()
    surface = ConsoleSurface(output)
    if run.status == "succeeded":
        for step_id, name, dataset_id in results(workflow, run):
            output.write_lines(["", f"── result {step_id}.{name} ──"])
            try:
                await engine.show_dataset(surface, step_thread(run.id, workflow.name, step_id), dataset_id)
            except DatasetError as exc:
                output.write_lines([f"  {name}: {exc}"])
    output.write_lines(["", summary_line(run)])
    return 0 if run.status == "succeeded" else 1


def summary_line(run: RunRecord) -> str:
    """One line for a finished run: status, how many steps, how long, and the error if any."""
    took = (run.finished - run.started).total_seconds() if run.finished else 0.0
    done = sum(s.status in ("succeeded", "reused") for s in run.steps)
    head = f"run {run.id} {run.status}: {done}/{len(run.steps)} steps in {took:.1f} s"
    return head + (f" · {run.error}" if run.error and run.status != "succeeded" else "")


async def list_runs(engine: Engine, output: ConsoleOutput | None = None, limit: int = 20) -> int:
    """Print the most recent runs, newest first."""
    output = output or ConsoleOutput()
    runs = await engine.workflow_runs(limit=limit)
    if not runs:
        output.write_lines(["No workflow runs yet. Start one with: datathread run FILE.yml"])
        return 0
    lines = []
    for run in runs:
        started = run.started.astimezone().strftime("%Y-%m-%d %H:%M")
        steps = " ".join(f"{MARKS.get(s.status, '·')}{s.id}" for s in run.steps)
        lines.append(f"{run.id}  {started}  {run.workflow:<20} {run.status:<9} {steps}"
                     + (f"  · {run.error}" if run.error and run.status != "succeeded" else ""))
    output.write_lines(lines)
    return 0


def load_or_report(path: Path, output: ConsoleOutput) -> Workflow | None:
    """The workflow in ``path``, or ``None`` after printing every problem with its line."""
    from bot.workflows.spec import load_workflow

    try:
        return load_workflow(path)
    except WorkflowError as exc:
        output.write_lines([f"datathread: {exc}"])
    except OSError as exc:
        output.write_lines([f"datathread: cannot read {path}: {exc.strerror or exc}"])
    return None
