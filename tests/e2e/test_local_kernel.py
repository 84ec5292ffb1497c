"""The local kernel agent against real ipykernel kernels and the real dataset store.

Kernel start is the cost, so most tests share one kernel (one conversation) per module; tests about
limits, idling and shutdown use their own executors with short limits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
import pytest_asyncio

from bot.agents.kernel.agent import LocalKernelAgent, LocalKernelExecutor
from bot.config import Settings
from bot.conversation import Attachment, Conversation, Turn
from bot.datasets.local import LocalDatasetStore
from bot.datasets.registrar import ThreadDatasets
from bot.events import (
    AgentEvent,
    CodeError,
    CodeOutput,
    CodeStarted,
    DatasetProduced,
    FileProduced,
    FinalText,
    Notice,
    TurnFailed,
)
from bot.help import local_agent_help
from bot.messages import ThreadKey
from bot.workspace import Workspace

#: Kernels and their sockets belong to one event loop: every async test here shares the module's.
shared_loop = pytest.mark.asyncio(loop_scope="module")


@dataclasses.dataclass
class World:
    root: Path
    store: LocalDatasetStore
    settings: Settings

    def conversation(self, name: str) -> Conversation:
        now = datetime.now(UTC)
        key = ThreadKey("console", "local", "test", name)
        return Conversation(name, key, f"s-{name}", "alice", self.root / "workspaces" / name, now, now)

    def turn(self, conversation: Conversation, text: str = "") -> Turn:
        workspace = Workspace(conversation.workspace).ensure()
        return Turn(conversation, text, (), workspace, ThreadDatasets(self.store, conversation))

    def executor(self, **limits: Any) -> LocalKernelExecutor:
        grace = limits.pop("interrupt_grace", 3.0)
        return LocalKernelExecutor(dataclasses.replace(self.settings, **limits), interrupt_grace=grace)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    root = tmp_path_factory.mktemp("home")
    settings = Settings.from_env({"DATATHREAD_HOME": str(root)})
    settings = dataclasses.replace(settings, run_timeout=30.0, output_cap_chars=2000)
    store = LocalDatasetStore(root / "datasets")
    yield World(root, store, settings)
    await store.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def agent(world: World) -> AsyncIterator[LocalKernelAgent]:
    agent = LocalKernelAgent(world.executor())
    yield agent
    await agent.aclose()


@pytest.fixture(scope="module")
def main(world: World) -> Conversation:
    return world.conversation("main")


async def timed(stream: AsyncGenerator[AgentEvent, None]) -> list[tuple[float, AgentEvent]]:
    start = time.monotonic()
    out: list[tuple[float, AgentEvent]] = []
    async with aclosing(stream) as events:
        async for event in events:
            out.append((time.monotonic() - start, event))
    return out


async def run(agent: LocalKernelAgent, world: World, conversation: Conversation, text: str) -> list[AgentEvent]:
    return [e for _, e in await timed(agent.run(world.turn(conversation, text)))]


def stdout(events: Sequence[AgentEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, CodeOutput) and e.stream == "stdout")


def of(kind: type, events: Sequence[AgentEvent]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


async def kernel_pid(run_code: Any) -> int:
    events = await run_code("import os; print(os.getpid())")
    return int(stdout(events).strip())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.e2e
@shared_loop
async def test_prose_gets_help_and_starts_no_code(agent: LocalKernelAgent, world: World, main: Conversation) -> None:
    for text in ("hello", "what does this table show?", "thanks", "not sure"):
        events = await run(agent, world, main, text)
        assert events == [FinalText(local_agent_help())], text


@pytest.mark.e2e
@shared_loop
async def test_a_lone_name_runs_when_it_is_a_variable(
    agent: LocalKernelAgent, world: World, main: Conversation
) -> None:
    await run(agent, world, main, "greeting = 'hi there'")
    events = await run(agent, world, main, "greeting")
    assert events[0] == CodeStarted("greeting")
    assert "hi there" in stdout(events)


# ---- output and errors ----------------------------------------------------------------------


@pytest.mark.e2e
@shared_loop
async def test_stdout_streams_while_the_code_runs(agent: LocalKernelAgent, world: World, main: Conversation) -> None:
    code = "```python\nimport time\nprint('first', flush=True)\ntime.sleep(1.0)\nprint('second')\n```"
    events = await timed(agent.run(world.turn(main, code)))
    assert isinstance(events[0][1], CodeStarted)
    outputs = [(t, e) for t, e in events if isinstance(e, CodeOutput)]
    assert [e.text for _, e in outputs] == ["first\n", "second\n"]
    first_at, second_at = outputs[0][0], outputs[1][0]
    assert second_at - first_at > 0.6, "the first line must arrive before the code finishes"


@pytest.mark.e2e
@shared_loop
async def test_stderr_is_its_own_stream(agent: LocalKernelAgent, world: World, main: Conversation) -> None:
    events = await run(agent, world, main, "import sys; print('oops', file=sys.stderr)")
    assert CodeOutput("oops\n", "stderr") in events


@pytest.mark.e2e
@shared_loop
async def test_an_exception_shows_type_message_and_the_users_lines(
    agent: LocalKernelAgent, world: World, main: Conversation
) -> None:
    code = "```python\ndef ratio(a, b):\n    return a / b\n\nratio(1, 0)\n```"
    [error] = of(CodeError, await run(agent, world, main, code))
    assert (error.ename, error.evalue) == ("ZeroDivisionError", "division by zero")
    assert "\x1b" not in error.traceback + error.evalue
    assert "ratio(1, 0)" in error.traceback and "return a / b" in error.traceback
    assert "ipykernel" not in error.traceback and "Traceback" not in error.traceback


@pytest.mark.e2e
@shared_loop
async def test_a_library_error_keeps_the_users_frames_and_the_raising_line(
    agent: LocalKernelAgent, world: World, main: Conversation
) -> None:
    code = "```python\nimport pandas as pd\nframe = pd.DataFrame({'a': [1]})\nframe['missing']\n```"
    [error] = of(CodeError, await run(agent, world, main, code))
    assert error.ename == "KeyError" and "missing" in error.evalue
    assert "frame['missing']" in error.traceback
    assert "The above exception" not in error.traceback  # only the last exception of the chain
    assert len(error.traceback.splitlines()) < 25


@pytest.mark.e2e
@shared_loop
async def test_a_syntax_error_points_at_the_line(agent: LocalKernelAgent, world: World, main: Conversation) -> None:
    [error] = of(CodeError, await run(agent, world, main, "```python\nx = (1,\n```"))
    assert error.ename == "SyntaxError"
    assert ".py" not in error.evalue  # no temporary file names
    assert "x = (1," in error.traceback


@pytest.mark.e2e
@shared_loop
async def test_output_beyond_the_cap_is_saved_in_the_workspace(world: World) -> None:
    executor = world.executor(output_cap_chars=100)
    conversation = world.conversation("cap")
    turn = world.turn(conversation)
    try:
        events = [e async for e in executor.execute(turn, "for i in range(500): print(f'line {i}')")]
    finally:
        await executor.aclose()
    shown = stdout(events)
    assert shown.startswith("line 0\nline 1\n") and shown.rstrip().endswith("line 499")  # start and end
    assert "characters not shown" in shown and "line 250\n" not in shown  # the middle is left out
    [notice] = of(Notice, events)
    saved = turn.workspace.root / "outputs" / "output-1.txt"
    assert "outputs/output-1.txt" in notice.text
    assert saved.read_text() == "".join(f"line {i}\n" for i in range(500))
    assert [f.path for f in of(FileProduced, events)] == [saved]


@pytest.mark.e2e
@shared_loop
async def test_kernels_do_not_see_our_secrets(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-not-for-user-code")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-user-code")
    executor = world.executor()
    turn = world.turn(world.conversation("secrets"))
    code = "import os; print(sorted(k for k in os.environ if 'SLACK' in k or 'AWS' in k), 'PATH' in os.environ)"
    try:
        events = [e async for e in executor.execute(turn, code)]
    finally:
        await executor.aclose()
    assert stdout(events) == "[] True\n"


@pytest.mark.e2e
@shared_loop
async def test_shell_commands_run_in_the_workspace(agent: LocalKernelAgent, world: World, main: Conversation) -> None:
    events = await run(agent, world, main, "```sh\npwd\necho boom >&2\nexit 3\n```")
    assert events[0] == CodeStarted("pwd\necho boom >&2\nexit 3", "shell")
    assert stdout(events).strip() == str(main.workspace.resolve())
    assert CodeOutput("boom\n", "stderr") in events
    [error] = of(CodeError, events)
    assert "status 3" in error.evalue


# ---- datasets, files, figures -------------------------------------------------------------


@pytest.mark.e2e
@shared_loop
async def test_a_displayed_dataframe_becomes_a_dataset_named_after_its_variable(
    agent: LocalKernelAgent, world: World, main: Conversation
) -> None:
    code = (
        "```python\nimport pandas as pd\n"
        "sales = pd.DataFrame({'id': [f'R{i:05d}' for i in range(1, 30001)], 'value': range(30000)})\n"
        "display(sales.head(3))\nsales\n```"
    )
    events = await run(agent, world, main, code)
    assert not of(CodeError, events)
    first, second = (e.dataset for e in of(DatasetProduced, events))
    assert (first.name, first.rows) == ("result", 3)  # sales.head(3) is bound to no variable
    assert (second.name, second.rows) == ("sales", 30000)
    assert [c.name for c in second.columns] == ["id", "value"]
    assert (await world.store.page(second.id, 1, 5)).rows[0] == ("R00001", "0")
    assert "R00001" not in stdout(events)  # the dataset message shows the table, not the text repr
    page = await world.store.page(second.id, 1500, 20)
    assert page.rows[0] == ("R29981", "29980")
    assert not list((main.workspace / ".datathread" / "frames").glob("*.arrow"))  # hand-over files are gone


@pytest.mark.e2e
@shared_loop
async def test_a_series_and_an_indexed_result_keep_their_labels(
    agent: LocalKernelAgent, world: World, main: Conversation
) -> None:
    code = (
        "```python\nimport pandas as pd\nt = pd.DataFrame({'city': ['a', 'b', 'a'], 'n': [1, 2, 3]})\n"
        "totals = t.groupby('city')['n'].sum()\ntotals\n```"
    )
    [produced] = of(DatasetProduced, await run(agent, world, main, code))
    assert produced.dataset.name == "totals"
    assert [c.name for c in produced.dataset.columns] == ["city", "n"]
    assert (await world.store.page(produced.dataset.id, 1, 5)).rows == (("a", "4"), ("b", "2"))


@pytest.mark.e2e
@shared_loop
async def test_written_files_are_announced_and_tables_registered(
    agent: LocalKernelAgent, world: World, main: Conversation
) -> None:
    code = (
        "```python\nimport pandas as pd\n"
        "pd.DataFrame({'x': range(10)}).to_csv('numbers.csv', index=False)\n"
        "open('notes.txt', 'w').write('hello')\nprint('saved')\n```"
    )
    events = await run(agent, world, main, code)
    assert stdout(events) == "saved\n"
    files = {e.name: e for e in of(FileProduced, events)}
    assert set(files) == {"numbers.csv", "notes.txt"}
    assert files["notes.txt"].size == 5 and files["notes.txt"].path == main.workspace.resolve() / "notes.txt"
    [dataset] = [e.dataset for e in of(DatasetProduced, events)]
    assert (dataset.name, dataset.rows) == ("numbers", 10)
    # Unchanged files are not announced again.
    assert not of(FileProduced, await run(agent, world, main, "print(1)"))


@pytest.mark.e2e
@shared_loop
async def test_plt_show_saves_a_png_in_the_workspace_once(
    agent: LocalKernelAgent, world: World, main: Conversation
) -> None:
    code = (
        "```python\nimport matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()\n"
        "plt.figure()\nplt.bar(['a', 'b'], [1, 2]);\n```"  # the second is left open: shown at the end
    )
    events = await run(agent, world, main, code)
    figures = of(FileProduced, events)
    assert len(figures) == 2, events
    root = main.workspace.resolve()
    for figure in figures:
        assert figure.path.parent == root / "figures"
        assert figure.name.startswith("figures/figure-") and figure.media_type == "image/png"
        assert figure.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figures[0].path != figures[1].path


@pytest.mark.e2e
@shared_loop
async def test_an_image_display_is_saved_as_a_file(agent: LocalKernelAgent, world: World, main: Conversation) -> None:
    code = (
        "```python\nimport io, matplotlib.figure\nfrom IPython.display import Image, display\n"
        "buf = io.BytesIO(); f = matplotlib.figure.Figure(); f.add_subplot().plot([1, 2])\n"
        "f.savefig(buf, format='png')\n"
        "display(Image(buf.getvalue()))\n```"
    )
    [figure] = of(FileProduced, await run(agent, world, main, code))
    assert figure.path.parent == main.workspace.resolve() / "figures"
    assert figure.path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.e2e
@shared_loop
async def test_memory_is_limited(agent: LocalKernelAgent, world: World, main: Conversation) -> None:
    # np.empty does not touch the pages: without the limit this allocation would succeed.
    [error] = of(CodeError, await run(agent, world, main, "import numpy as np; big = np.empty(1 << 33)"))
    assert error.ename == "MemoryError"
    assert "4" in stdout(await run(agent, world, main, "print(int(np.ones(4).sum()))"))


# ---- limits, death, idling, concurrency, cancellation, shutdown ---------------------------


@pytest.mark.e2e
@shared_loop
async def test_time_limit_interrupts_and_keeps_the_kernel(world: World) -> None:
    executor = world.executor(run_timeout=1.5, interrupt_grace=2.0)
    turn = world.turn(world.conversation("slow"))
    try:
        await timed(executor.execute(turn, "kept = 41"))
        events = await timed(executor.execute(turn, "import time\nprint('start', flush=True)\ntime.sleep(60)"))
        assert events[-1][0] < 6
        kinds = [e for _, e in events]
        assert stdout(kinds) == "start\n"
        [notice] = of(Notice, kinds)
        assert "time limit" in notice.text and "Variables are kept" in notice.text
        assert not of(CodeError, kinds)  # our own KeyboardInterrupt is not the user's error
        after = [e for _, e in await timed(executor.execute(turn, "print(kept + 1)"))]
        assert stdout(after) == "42\n"

        # Code that ignores the interrupt: the kernel is replaced and the user told variables are gone.
        stubborn = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
        [notice] = of(Notice, [e for _, e in await timed(executor.execute(turn, stubborn))])
        assert "restarted" in notice.text and "Variables were lost" in notice.text
        after = [e for _, e in await timed(executor.execute(turn, "print('fresh'); print(kept)"))]
        assert stdout(after) == "fresh\n"
        assert of(CodeError, after)[0].ename == "NameError"
    finally:
        await executor.aclose()


@pytest.mark.e2e
@shared_loop
async def test_a_kernel_that_dies_is_replaced(agent: LocalKernelAgent, world: World) -> None:
    conversation = world.conversation("dies")
    await run(agent, world, conversation, "x = 1")
    events = await run(agent, world, conversation, "import os; os._exit(1)")
    [notice] = of(Notice, events)
    assert notice.level == "error" and "Variables were lost" in notice.text
    events = await run(agent, world, conversation, "print('back')")
    assert stdout(events) == "back\n"
    assert not of(TurnFailed, events)


@pytest.mark.e2e
@shared_loop
async def test_an_idle_kernel_is_stopped_and_started_again(world: World) -> None:
    executor = world.executor(kernel_idle_timeout=0.4)
    turn = world.turn(world.conversation("idle"))
    try:

        async def run_code(code: str) -> list[AgentEvent]:
            return [e async for e in executor.execute(turn, code)]

        pid = await kernel_pid(run_code)
        await run_code("x = 1; open('kept.txt', 'w').write('still here')")
        for _ in range(50):
            if not alive(pid):
                break
            await asyncio.sleep(0.1)
        assert not alive(pid), "the idle kernel should have been stopped"
        events = await run_code("print(open('kept.txt').read()); print(x)")
        [notice] = of(Notice, events)
        assert "without use" in notice.text
        assert stdout(events) == "still here\n"
        assert of(CodeError, events)[0].ename == "NameError"
    finally:
        await executor.aclose()


@pytest.mark.e2e
@shared_loop
async def test_conversations_run_at_the_same_time(agent: LocalKernelAgent, world: World, main: Conversation) -> None:
    other = world.conversation("other")
    await run(agent, world, other, "print('warm')")  # start its kernel outside the timing
    slow_started = asyncio.Event()

    async def slow_turn() -> list[AgentEvent]:
        seen: list[AgentEvent] = []
        async with aclosing(agent.run(world.turn(main, "import time; time.sleep(2.5); print('slow')"))) as events:
            async for event in events:
                seen.append(event)
                if isinstance(event, CodeStarted):
                    slow_started.set()
        return seen

    slow = asyncio.create_task(slow_turn())
    await asyncio.wait_for(slow_started.wait(), 30)  # the slow code is on its way to its kernel
    started = time.monotonic()
    quick = await run(agent, world, other, "print('quick')")
    assert time.monotonic() - started < 1.5
    assert stdout(quick) == "quick\n"
    assert not slow.done()
    assert stdout(await slow) == "slow\n"


@pytest.mark.e2e
@shared_loop
async def test_cancelling_a_turn_interrupts_the_code_and_keeps_the_kernel(
    agent: LocalKernelAgent, world: World, main: Conversation
) -> None:
    await run(agent, world, main, "counter = 0")
    seen = asyncio.Event()

    endless = "import time\nwhile True:\n    counter += 1\n    print(counter, flush=True)\n    time.sleep(0.1)"

    async def consume() -> None:
        async with aclosing(agent.run(world.turn(main, endless))) as events:
            async for event in events:
                if isinstance(event, CodeOutput):
                    seen.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(seen.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    started = time.monotonic()
    events = await run(agent, world, main, "print(counter > 0)")
    assert stdout(events) == "True\n"  # same kernel, variables kept
    assert time.monotonic() - started < 3, "the loop must have been interrupted"


@pytest.mark.e2e
@shared_loop
async def test_aclose_leaves_no_kernel_processes(world: World) -> None:
    executor = world.executor()
    pids = []
    for name in ("close-a", "close-b"):
        turn = world.turn(world.conversation(name))

        async def run_code(code: str, turn: Turn = turn) -> list[AgentEvent]:
            return [e async for e in executor.execute(turn, code)]

        pids.append(await kernel_pid(run_code))
    assert all(alive(p) for p in pids)
    await executor.release(world.conversation("close-a"))
    assert not alive(pids[0]) and alive(pids[1])
    await executor.aclose()
    assert not any(alive(p) for p in pids)


def test_arrow_hand_over_is_readable(tmp_path: Path) -> None:
    """The kernel-side writer produces Arrow IPC files the store reads (awkward frames included)."""
    from bot.agents.kernel.startup import _tidy, _write_arrow

    frame = pd.DataFrame({"a": [1, "x", 2.5], "b": [1, 2, 3]}, index=pd.Index(["p", "q", "r"], name="key"))
    frame.columns = ["a", "a"]
    out = tmp_path / "f.arrow"
    _write_arrow(_tidy(frame), out)
    table = pa.ipc.open_file(str(out)).read_all()
    assert table.column_names == ["key", "a", "a_2"]
    assert table.column("a").to_pylist() == ["1", "x", "2.5"]


@pytest.mark.e2e
@shared_loop
async def test_files_alone_get_a_hint_to_read_them(agent: LocalKernelAgent, world: World) -> None:
    conversation = world.conversation("upload")
    turn = world.turn(conversation)
    path = turn.workspace.root / "sales.csv"
    path.write_text("a\n1\n")
    turn = dataclasses.replace(turn, attachments=(Attachment("sales.csv", path, 4, "text/csv"),))
    [answer] = [e async for e in agent.run(turn)]
    assert isinstance(answer, FinalText) and "pd.read_csv('sales.csv')" in answer.text
