"""Running a workflow: each step is one turn in a conversation of its own; datasets flow between steps
through the dataset store, never through another step's workspace.

A step's inputs are exported from the store into its workspace (``inputs/NAME.parquet``) and handed
to the turn as attachments, which is how every backend receives files (Converse in its executor's
workspace; a Bedrock agent as session files, in CSV as its code interpreter takes no Parquet); on a
backend with a Python executor they are also bound to variables of their names. The step's declared
outputs must be published as datasets of those names, or the step fails. A failing step stops the
run; ``resume_from`` reuses the outputs an earlier run stored (while the store still keeps them).
Every run is recorded in the state store.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from bot import events as ev
from bot.agents.backend import AgentBackend, CodeExecutor
from bot.conversation import Attachment, Conversation
from bot.datasets.model import DatasetError
from bot.engine import Engine
from bot.messages import ThreadKey
from bot.surface import Surface
from bot.workflows.record import RunRecord, RunStatus, StepRecord, StepStatus
from bot.workflows.spec import Step, Workflow, substitute
from bot.workflows.step_agents import INPUTS_DIR, CodeStepAgent, PreloadedAgent, input_file, preload_code
from bot.workspace import Workspace

log = logging.getLogger(__name__)

PARQUET = "application/vnd.apache.parquet"
#: ``ThreadKey.platform`` of a step's own conversation.
WORKFLOW_PLATFORM = "workflow"


class RunObserver(Protocol):
    """Where a run is shown. ``step_started`` returns the surface that shows the step's turn live."""

    async def step_started(self, run: RunRecord, step: Step) -> Surface: ...

    async def step_ended(self, run: RunRecord, step: Step, record: StepRecord) -> None: ...


class ResumeError(ValueError):
    """``resume_from`` cannot be honoured; ``str()`` says why and what to do."""


def _now() -> datetime:
    return datetime.now(UTC)


def step_thread(run_id: str, workflow: str, step_id: str) -> ThreadKey:
    """The key of a step's own conversation (one per run and step: nothing is shared between runs)."""
    return ThreadKey(WORKFLOW_PLATFORM, run_id, workflow, step_id)


def new_run_id() -> str:
    return "r" + _now().strftime("%Y%m%d%H%M%S") + secrets.token_hex(3)


@dataclass
class _Running:
    step: Step
    task: asyncio.Task[StepRecord]


class WorkflowRunner:
    """Runs workflows with ``engine``'s agent, stores and turn machinery.

    ``base``: the folder a step's ``files`` are copied from. ``owner`` owns every step's conversation
    and dataset. ``stop()`` stops a run in progress (its running steps end as stopped).

    ``thread``: the chat thread the run is shown in, if any. Each step keeps its own conversation
    (workspace, kernel or agent session) but is shown as that thread's: its datasets belong to the
    thread, so their buttons and typed commands work there, and the thread's Stop stops the step.
    """

    def __init__(self, engine: Engine, *, base: Path, owner: str, observer: RunObserver,
                 run_id: Callable[[], str] = new_run_id, thread: ThreadKey | None = None,
                 announce: Callable[[Step, int], Sequence[ev.AgentEvent]] | None = None) -> None:
        self.engine = engine
        self.base = base
        self.owner = owner
        self.observer = observer
        self.thread = thread
        self.announce = announce
        self._new_id = run_id
        self._running: dict[str, _Running] = {}
        self._stopping = False

    async def prepare(self, workflow: Workflow, params: Mapping[str, str],
                      resume_from: str | None = None) -> RunRecord:
        """The record of a new run (saved as ``running``); raises ``WorkflowError`` for unknown
        parameters and ``ResumeError`` when ``resume_from`` cannot reuse an earlier run's outputs."""
        values = workflow.resolve_params(params)
        steps = [StepRecord(s.id) for s in workflow.steps]
        if resume_from is not None:
            steps, earlier = await self._reusable(workflow, resume_from)
            values = {**earlier.params, **params}
        run = RunRecord(id=self._new_id(), workflow=workflow.name, owner=self.owner, status="running",
                        started=_now(), steps=tuple(steps), params=values)
        await self.engine.state.save_run(run)
        return run

    async def _reusable(self, workflow: Workflow, start: str) -> tuple[list[StepRecord], RunRecord]:
        names = [s.id for s in workflow.steps]
        if start not in names:
            raise ResumeError(f"'{start}' is not a step of {workflow.name} (steps: {', '.join(names)})")
        before = names[: names.index(start)]
        for earlier in await self.engine.state.workflow_runs(limit=50, workflow=workflow.name):
            records = [earlier.step(n) for n in before]
            if all(r is not None and r.status in ("succeeded", "reused") for r in records):
                break
        else:
            raise ResumeError(f"No earlier run of {workflow.name} finished the steps before '{start}': "
                              "run it from the start.")
        steps: list[StepRecord] = []
        for name in names:
            record = earlier.step(name)
            if name not in before or record is None:
                steps.append(StepRecord(name))
                continue
            for dataset, dataset_id in record.outputs.items():
                try:
                    await self.engine.datasets.get(dataset_id)
                except DatasetError:
                    raise ResumeError(f"The dataset '{dataset}' of step {name} (run {earlier.id}) is no longer "
                                      "stored: run the workflow from the start.") from None
            steps.append(StepRecord(name, "reused", record.started, record.finished, dict(record.outputs),
                                    reused_from=record.reused_from or earlier.id))
        return steps, earlier

    def stop(self) -> bool:
        """Stop the run in progress: running steps are stopped, the rest skipped. True if one ran."""
        if not self._running:
            return False
        self._stopping = True
        for running in self._running.values():
            running.task.cancel()  # its turn ends as stopped (see ``Engine.run_turn``)
        return True

    async def execute(self, workflow: Workflow, run: RunRecord) -> RunRecord:
        """Run the steps of ``run`` that are not done yet, at most ``workflow.max_parallel`` at once, and
        return the final record (also saved). Never raises for a failing step: the record says why."""
        self._stopping = False
        failure: str | None = None
        try:
            while True:
                done = {s.id for s in run.steps if s.status in ("succeeded", "reused")}
                ready = [s for s in workflow.steps
                         if (r := run.step(s.id)) is not None and r.status == "pending" and s.needs <= done]
                if failure is None and not self._stopping:
                    for step in ready[: workflow.max_parallel - len(self._running)]:
                        run = run.with_step(StepRecord(step.id, "running", _now()))
                        await self.engine.state.save_run(run)
                        task = asyncio.create_task(self._step(workflow, run, step), name=f"step {step.id}")
                        self._running[step.id] = _Running(step, task)
                if not self._running:
                    break
                finished, _ = await asyncio.wait([r.task for r in self._running.values()],
                                                 return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    running = next(r for r in self._running.values() if r.task is task)
                    del self._running[running.step.id]
                    record = self._result(running, task)
                    run = run.with_step(record)
                    await self.engine.state.save_run(run)
                    await self.observer.step_ended(run, running.step, record)
                    if record.status == "stopped" and not self._stopping:
                        self.stop()  # a step's own Stop stops the whole run
                        self._stopping = True
                    if record.status == "failed" and failure is None:
                        failure = f"step {record.id} failed: {record.error}"
                        for other in self._running.values():  # one failure stops the run
                            other.task.cancel()
        except asyncio.CancelledError:  # the run itself was cancelled (the server shuts down): record that
            left: dict[str, StepStatus] = {"running": "stopped", "pending": "skipped"}
            steps = tuple(replace(s, status=left.get(s.status, s.status)) for s in run.steps)
            run = replace(run, steps=steps, status="stopped", finished=_now(), error="stopped")
            await asyncio.shield(self.engine.state.save_run(run))
            raise
        finally:
            for running in self._running.values():
                running.task.cancel()
            self._running.clear()
        stopped = self._stopping or any(s.status == "stopped" for s in run.steps)
        status: RunStatus = "failed" if failure else "stopped" if stopped else "succeeded"
        steps = tuple(replace(s, status="skipped") if s.status == "pending" else s for s in run.steps)
        if status == "succeeded" and any(s.status == "skipped" for s in steps):
            status = "failed"
            failure = "some steps could not run"
        run = replace(run, steps=steps, status=status, finished=_now(),
                      error=failure or ("stopped" if status == "stopped" else None))
        await self.engine.state.save_run(run)
        return run

    def _result(self, running: _Running, task: asyncio.Task[StepRecord]) -> StepRecord:
        started = _now()
        if task.cancelled():
            return StepRecord(running.step.id, "stopped", started, _now(), error="stopped")
        exc = task.exception()
        if exc is not None:
            log.error("workflow step %s crashed", running.step.id, exc_info=exc)
            return StepRecord(running.step.id, "failed", started, _now(),
                              error="something went wrong on our side (details are in the log)")
        return task.result()

    async def _step(self, workflow: Workflow, run: RunRecord, step: Step) -> StepRecord:
        started = _now()

        def ended(status: str, error: str | None = None, outputs: dict[str, str] | None = None) -> StepRecord:
            return StepRecord(step.id, status, started, _now(), outputs or {}, error)  # type: ignore[arg-type]

        surface = await self.observer.step_started(run, step)
        own = step_thread(run.id, workflow.name, step.id)
        conversation = await self.engine.state.start_conversation(own, self.owner)
        if self.thread is not None:
            conversation = replace(conversation, key=self.thread)
        try:
            loaded = await self._load(run, step, conversation)
        except _StepProblem as problem:
            return ended("failed", str(problem))
        agent, text, problem_text = self._agent_for(step, run.params, [i.dataset for i in step.inputs])
        if agent is None:
            return ended("failed", problem_text)
        try:
            intro = self.announce(step, workflow.steps.index(step)) if self.announce is not None else ()
            outcome = await self.engine.run_turn(conversation, surface, text, attachments=loaded, agent=agent,
                                                 intro=intro)
        finally:
            try:
                await agent.release(conversation)  # a step's kernel or session is not needed after its turn
            except Exception:
                log.warning("could not release step %s", step.id, exc_info=True)
        published = {e.dataset.name: e.dataset.id for e in outcome.events if isinstance(e, ev.DatasetProduced)}
        if outcome.state == "stopped":
            return ended("stopped", "stopped", published)
        failed = next((e for e in outcome.events if isinstance(e, ev.TurnFailed)), None)
        if failed is not None:
            return ended("failed", failed.message, published)
        error = next((e for e in outcome.events if isinstance(e, ev.CodeError)), None)
        if step.run is not None and error is not None:
            return ended("failed", f"{error.ename}: {error.evalue}".rstrip(": "), published)
        cut = next((e for e in outcome.events if isinstance(e, ev.Notice) and _cut_short(e)), None)
        if step.run is not None and cut is not None:
            return ended("failed", cut.text, published)
        missing = [name for name in step.outputs if name not in published]
        if missing:
            names = ", ".join(f"'{n}'" for n in missing)
            return ended("failed", f"it finished without publishing the dataset {names} it declares as output",
                         published)
        return ended("succeeded", outputs={n: published[n] for n in step.outputs})

    async def _load(self, run: RunRecord, step: Step, conversation: Conversation) -> list[Attachment]:
        """Copy the step's files and export its input datasets into its workspace (nothing else)."""
        workspace = Workspace(conversation.workspace).ensure()
        loaded: list[Attachment] = []
        for name in step.files:
            source = self.base / name
            if not source.is_file():
                raise _StepProblem(f"the file {name} is not in {self.base}")
            target = workspace.resolve(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(shutil.copyfile, source, target)
            loaded.append(Attachment(name, target, target.stat().st_size, "text/csv" if name.endswith(".csv")
                                     else "application/octet-stream"))
        for ref in step.inputs:
            producer = run.step(ref.step)
            dataset_id = producer.outputs.get(ref.dataset) if producer is not None else None
            if dataset_id is None:
                raise _StepProblem(f"the input {ref} was not produced")
            target = workspace.resolve(input_file(ref.dataset))
            try:
                await self.engine.datasets.export(dataset_id, "parquet", target)
            except DatasetError as exc:
                raise _StepProblem(f"the input {ref} could not be loaded: {exc}") from None
            if python_executor(self.engine.agent) is not None:
                loaded.append(Attachment(f"{ref.dataset}.parquet", target, target.stat().st_size, PARQUET))
                continue
            # An agent without an executor of ours (Bedrock Agents) gets inputs as session files, and its
            # code interpreter takes CSV but not Parquet: send a CSV copy (the Parquet stays in the workspace).
            csv = workspace.resolve(f"{INPUTS_DIR}/{ref.dataset}.csv")
            await self.engine.datasets.export(dataset_id, "csv", csv)
            loaded.append(Attachment(f"{ref.dataset}.csv", csv, csv.stat().st_size, "text/csv"))
        return loaded

    def _agent_for(self, step: Step, params: Mapping[str, str],
                   inputs: list[str]) -> tuple[AgentBackend | None, str, str]:
        """The agent for the step's turn, the text the turn carries, and why there is none."""
        executor = python_executor(self.engine.agent)
        if step.run is not None:
            if executor is None:
                return None, "", (f"the agent ({self.engine.agent.name}) has no code executor of its own, so "
                                  "run steps cannot run on it: use ask")
            return CodeStepAgent(executor, step.run, preload_code(inputs, params)), step.run, ""
        # The inputs reach the agent as the turn's attachments (named in its prompt, session files on
        # Bedrock): the text stays the author's prompt, which the local kernel may run as code.
        prompt = substitute(step.ask or "", params)
        if executor is not None:
            return PreloadedAgent(self.engine.agent, executor, preload_code(inputs, params)), prompt, ""
        return self.engine.agent, prompt, ""


def _cut_short(notice: ev.Notice) -> bool:
    """A notice saying the executor stopped the code before it finished (a time or disk limit): the
    code of a ``run`` step did not run to its end, so the step cannot count as done. The executors
    word these notices "Stopped: ..." / "... kernel was stopped ..."."""
    return notice.level != "info" and "stopped" in notice.text.split(".")[0].lower()


class _StepProblem(Exception):
    """A step cannot start; ``str()`` is the user-facing reason."""


def python_executor(agent: AgentBackend) -> CodeExecutor | None:
    """The Python executor the agent runs code on (the local kernel, AgentCore), or ``None``."""
    executor = getattr(agent, "executor", None)
    return executor if executor is not None and hasattr(executor, "execute") else None
