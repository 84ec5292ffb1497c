"""The kernel pool with real sandboxed kernels: a hard cap, waiting turns told and served in order,
least recently used idle kernels stopped to make room, warm kernels that adopt a new conversation."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import pytest
import pytest_asyncio

from bot.agents.kernel.agent import LocalKernelAgent
from bot.agents.kernel.sandbox import descendants
from bot.config import Settings
from bot.conversation import Conversation
from bot.datasets.local import LocalDatasetStore
from bot.events import AgentEvent, CodeOutput, Notice
from tests.e2e.test_local_kernel import World, run, stdout
from tests.waiting import until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bubblewrap sandboxes are Linux only"),
]


def fenced(code: str) -> str:
    return f"```python\n{code}\n```"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    root = tmp_path_factory.mktemp("home")
    settings = Settings.from_env({"DATATHREAD_HOME": str(root)})
    settings = dataclasses.replace(settings, run_timeout=30.0, kernel_sandbox=True, max_kernels=2, warm_kernels=0)
    store = LocalDatasetStore(root / "datasets")
    yield World(root, store, settings)
    await store.aclose()


def kernel_processes() -> int:
    """Python kernel processes running under this test process (not their bwrap wrappers), from /proc."""
    count = 0
    for pid in descendants(os.getpid()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if b"ipykernel_launcher" in cmdline and "python" in Path(exe).name:
            count += 1
    return count


class PeakKernels:
    """Samples the number of kernel processes while a block runs."""

    def __init__(self) -> None:
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, await asyncio.to_thread(kernel_processes))
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> PeakKernels:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def timed_run(agent: LocalKernelAgent, world: World, conversation: Conversation,
                    text: str) -> list[tuple[float, AgentEvent]]:
    start = time.monotonic()
    out: list[tuple[float, AgentEvent]] = []
    async with aclosing(agent.run(world.turn(conversation, text))) as events:
        async for event in events:
            out.append((time.monotonic() - start, event))
    return out


async def test_never_more_than_max_kernels_and_waiting_turns_are_told_within_a_second(world: World) -> None:
    agent = LocalKernelAgent(world.executor())
    names = [f"busy{i}" for i in range(5)]
    code = "import time\ntime.sleep(1.5)\nprint('{}')"
    try:
        async with PeakKernels() as sampler:
            results = await asyncio.gather(*(
                timed_run(agent, world, world.conversation(n), fenced(code.format(n))) for n in names))
        assert sampler.peak <= 2, f"{sampler.peak} kernel processes at once"
        assert sampler.peak >= 1
        waited = 0
        for name, events in zip(names, results, strict=True):
            assert "".join(e.text for _, e in events if isinstance(e, CodeOutput)) == f"{name}\n"
            notices = [(t, e) for t, e in events if isinstance(e, Notice) and "Waiting for a free kernel" in e.text]
            if notices:
                waited += 1
                assert notices[0][0] < 1.0, "the wait is shown within a second"
        assert waited >= 3, "five turns, two kernels: at least three waited"
    finally:
        await agent.aclose()


async def test_turns_of_one_thread_keep_their_order_while_waiting(world: World) -> None:
    agent = LocalKernelAgent(world.executor())
    blockers = [world.conversation(f"blocker{i}") for i in range(2)]
    ordered = world.conversation("ordered")
    try:
        block = [asyncio.create_task(run(agent, world, c, fenced("import time; time.sleep(1.5)"))) for c in blockers]
        await until(lambda: agent.executor.pool.running == 2, within=30)  # both kernels are the blockers' now
        code = "seen = globals().get('seen', [])\nseen.append({})\nprint(seen)"
        turns = [asyncio.create_task(run(agent, world, ordered, fenced(code.format(i)))) for i in range(4)]
        results = await asyncio.gather(*turns)
        await asyncio.gather(*block)
        assert any("Waiting for a free kernel" in e.text for e in results[0] if isinstance(e, Notice))
        assert [stdout(events).strip() for events in results] == ["[0]", "[0, 1]", "[0, 1, 2]", "[0, 1, 2, 3]"]
    finally:
        await agent.aclose()


async def test_the_least_recently_used_idle_kernel_is_stopped_to_make_room(world: World) -> None:
    agent = LocalKernelAgent(world.executor())
    first, second, third = (world.conversation(n) for n in ("lru-a", "lru-b", "lru-c"))
    try:
        await run(agent, world, first, fenced("a = 1"))
        await run(agent, world, second, fenced("b = 2"))
        events = await run(agent, world, third, fenced("print('c')"))
        assert stdout(events) == "c\n"
        assert not [e for e in events if isinstance(e, Notice)], "room was made without waiting"
        assert stdout(await run(agent, world, second, fenced("print(b)"))) == "2\n", "the newer kernel stayed"
        events = await run(agent, world, first, fenced("print('a' in dir())"))
        assert stdout(events) == "False\n"
        assert any("stopped to make room" in e.text for e in events if isinstance(e, Notice))
    finally:
        await agent.aclose()


async def test_a_warm_kernel_answers_a_new_conversation_in_its_own_workspace(world: World) -> None:
    agent = LocalKernelAgent(world.executor(warm_kernels=1))
    fresh = world.conversation("fresh")
    try:
        await agent.executor.warm_up()
        [warm] = agent.executor._warm
        warm_folder = warm.workspace
        turn = world.turn(fresh)
        (turn.workspace.root / "given.txt").write_text("attached before the first run")
        code = fenced("print(open('given.txt').read())\nopen('made.txt', 'w').write('made')")
        events = await timed_run(agent, world, fresh, code)
        assert agent.executor._slots[fresh.id].session is warm, "the warm kernel was used"
        assert "attached before the first run" in "".join(e.text for _, e in events if isinstance(e, CodeOutput))
        assert (fresh.workspace / "made.txt").read_text() == "made"
        assert not warm_folder.exists(), "the warm kernel's folder became the conversation's workspace"
    finally:
        await agent.aclose()


async def test_a_turn_stopped_while_its_kernel_starts_leaves_no_process_and_frees_its_place(world: World) -> None:
    agent = LocalKernelAgent(world.executor())
    try:
        turn = asyncio.create_task(run(agent, world, world.conversation("stopped"), fenced("print(1)")))
        for _ in range(200):  # until the kernel process exists: the start is under way
            if await asyncio.to_thread(kernel_processes):
                break
            await asyncio.sleep(0.01)
        turn.cancel()
        with pytest.raises(asyncio.CancelledError):
            await turn
        assert await asyncio.to_thread(kernel_processes) == 0
        assert agent.executor.pool.running == 0
        assert stdout(await run(agent, world, world.conversation("next"), fenced("print(2)"))) == "2\n"
    finally:
        await agent.aclose()
