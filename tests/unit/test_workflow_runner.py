"""The workflow runner with a scripted agent, the real dataset store and SQLite state.

Scheduling (``max_parallel``), what an ``ask`` step's agent receives, Stop, and a backend without a
code executor; the local-kernel path end to end is in ``tests/e2e/test_workflows_terminal.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot import events as ev
from bot.composition import build_engine
from bot.config import Settings
from bot.conversation import Turn
from bot.engine import Engine
from bot.surface import Surface
from bot.workflows.record import RunRecord, StepRecord
from bot.workflows.runner import WorkflowRunner
from bot.workflows.spec import Step, parse_workflow
from tests.fakes.scripted_agent import ScriptedAgent, Sleep, WriteFile
from tests.fakes.scripted_agent import Step as ScriptStep
from tests.surfaces import RecordingSurface

PARALLEL = """\
name: fan-out
params: {region: EMEA}
max_parallel: {n}
steps:
  - id: a
    ask: "make a for {region}"
    outputs: [a]
  - id: b
    ask: "make b"
    outputs: [b]
  - id: join
    inputs: [a.a, b.b]
    ask: "join them"
    outputs: [joined]
"""


class Observer:
    """Records when each step started and ended (loop time) and gives each step its own surface."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.surfaces: dict[str, RecordingSurface] = {}

    async def step_started(self, run: RunRecord, step: Step) -> Surface:
        self.started[step.id] = asyncio.get_running_loop().time()
        self.surfaces[step.id] = RecordingSurface()
        return self.surfaces[step.id]

    async def step_ended(self, run: RunRecord, step: Step, record: StepRecord) -> None:
        self.ended[step.id] = asyncio.get_running_loop().time()


def script(turn: Turn, *, takes: float = 0.15) -> list[ScriptStep]:
    """Each step writes a CSV named after the first word after "make" (or ``joined``), after
    ``takes`` seconds (long enough to see which steps overlap)."""
    words = turn.text.split()
    name = words[1] if words[0] == "make" else "joined"
    return [Sleep(takes), WriteFile(f"{name}.csv", b"x,y\n1,2\n3,4\n")]


def engine_for(tmp_path: Path, agent: ScriptedAgent) -> Engine:
    settings = Settings.from_env({"DATATHREAD_HOME": str(tmp_path)})
    return build_engine(settings, agent=agent, env={})


async def run_once(tmp_path: Path, text: str, agent: ScriptedAgent) -> tuple[RunRecord, Observer, Engine]:
    engine = engine_for(tmp_path, agent)
    observer = Observer()
    runner = WorkflowRunner(engine, base=tmp_path, owner="UALICE", observer=observer)
    workflow = parse_workflow(text)
    run = await runner.execute(workflow, await runner.prepare(workflow, {}))
    return run, observer, engine


def overlap(observer: Observer, x: str, y: str) -> bool:
    return observer.started[x] < observer.ended[y] and observer.started[y] < observer.ended[x]


async def test_independent_steps_run_together_up_to_max_parallel_and_dependants_wait(tmp_path: Path) -> None:
    run, observer, engine = await run_once(tmp_path / "2", PARALLEL.replace("{n}", "2"), ScriptedAgent(script))
    assert run.status == "succeeded", run
    assert overlap(observer, "a", "b")
    assert observer.started["join"] >= max(observer.ended["a"], observer.ended["b"])
    await engine.aclose()
    run, observer, engine = await run_once(tmp_path / "1", PARALLEL.replace("{n}", "1"), ScriptedAgent(script))
    assert run.status == "succeeded" and not overlap(observer, "a", "b")  # the default: one at a time
    await engine.aclose()


async def test_an_ask_step_gets_its_prompt_with_parameters_and_its_inputs_as_files(tmp_path: Path) -> None:
    # Like Bedrock Agents: no executor of ours, inputs go as session files. Timing is not the point here.
    agent = ScriptedAgent(lambda turn: script(turn, takes=0))
    run, observer, engine = await run_once(tmp_path, PARALLEL.replace("{n}", "1"), agent)
    first, _, join = agent.turns
    assert first.text == "make a for EMEA"
    assert sorted(a.name for a in join.attachments) == ["a.csv", "b.csv"]  # Bedrock's code interpreter takes CSV
    assert join.attachments[0].path.read_text() == '"x","y"\n1,2\n3,4\n'
    assert sorted(f.name for f in join.workspace.files()) == [
        "inputs/a.csv", "inputs/a.parquet", "inputs/b.csv", "inputs/b.parquet", "joined.csv"]
    assert len({t.conversation.id for t in agent.turns}) == 3  # a conversation (and workspace) per step
    stored = await engine.state.workflow_run(run.id)
    assert stored == run and set(run.step("join").outputs) == {"joined"}  # type: ignore[union-attr]
    meta = await engine.datasets.get(run.step("join").outputs["joined"])  # type: ignore[union-attr]
    assert meta.rows == 2
    # each step's turn is shown live on its own surface, with the dataset page it produced
    assert all(s.of("live.finish") for s in observer.surfaces.values())
    await engine.aclose()


async def test_stop_ends_the_running_step_and_skips_the_rest(tmp_path: Path) -> None:
    running = asyncio.Event()

    def sleeper(turn: Turn) -> list[ScriptStep]:
        running.set()  # the step's turn has begun
        return [Sleep(30)]

    agent = ScriptedAgent(sleeper)
    engine = engine_for(tmp_path, agent)
    observer = Observer()
    runner = WorkflowRunner(engine, base=tmp_path, owner="UALICE", observer=observer)
    workflow = parse_workflow(PARALLEL.replace("{n}", "1"))
    run = await runner.prepare(workflow, {})
    task = asyncio.create_task(runner.execute(workflow, run))
    await asyncio.wait_for(running.wait(), 5)
    assert runner.stop()
    run = await asyncio.wait_for(task, 5)
    assert run.status == "stopped"
    assert [s.status for s in run.steps] == ["stopped", "skipped", "skipped"]
    await engine.aclose()


async def test_a_run_step_on_an_agent_without_an_executor_fails_saying_why(tmp_path: Path) -> None:
    text = "name: code\nsteps:\n  - id: only\n    run: print(1)\n"
    run, _, engine = await run_once(tmp_path, text, ScriptedAgent(lambda turn: [ev.FinalText("hi")]))
    assert run.status == "failed"
    assert "has no code executor" in (run.step("only").error or "")  # type: ignore[union-attr]
    assert run.error is not None and run.error.startswith("step only failed")
    await engine.aclose()


async def test_a_run_cancelled_from_outside_is_recorded_as_stopped(tmp_path: Path) -> None:
    running = asyncio.Event()

    def sleeper(turn: Turn) -> list[ScriptStep]:
        running.set()
        return [Sleep(30)]

    engine = engine_for(tmp_path, ScriptedAgent(sleeper))
    runner = WorkflowRunner(engine, base=tmp_path, owner="UALICE", observer=Observer())
    workflow = parse_workflow(PARALLEL.replace("{n}", "1"))
    run = await runner.prepare(workflow, {})
    task = asyncio.create_task(runner.execute(workflow, run))
    await asyncio.wait_for(running.wait(), 5)
    task.cancel()  # e.g. the server shutting down
    with pytest.raises(asyncio.CancelledError):
        await task
    stored = await engine.state.workflow_run(run.id)
    assert stored is not None and stored.status == "stopped"
    assert [s.status for s in stored.steps] == ["stopped", "skipped", "skipped"]
    await engine.aclose()
