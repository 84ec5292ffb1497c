"""Local kernel costs: sandbox start overhead, first output cold vs warm pool, memory per idle kernel.

    python -m benchmarks.kernels [--repeat 5]

* start: ``KernelSession.start`` (process, channels, startup code) unsandboxed vs in bubblewrap;
* first output: from a new conversation's ``print(1)`` turn to its ``CodeOutput``, with no warm kernel
  (cold) and after ``warm_up`` (warm pool of one);
* memory: an idle sandboxed kernel after the startup code, as the proportional set size (PSS) of its
  processes (python + bwrap's two) and as its memory cgroup's usage where there is one.

Medians of ``--repeat`` runs, on real kernels in a temporary home.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import tempfile
import time
from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path

from bot.agents.kernel.agent import LocalKernelAgent, LocalKernelExecutor
from bot.agents.kernel.sandbox import descendants, policy_for
from bot.agents.kernel.session import KernelSession
from bot.config import Settings
from bot.conversation import Conversation, Turn
from bot.datasets.local import LocalDatasetStore
from bot.datasets.registrar import ThreadDatasets
from bot.events import CodeOutput
from bot.messages import ThreadKey
from bot.workspace import Workspace


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


async def _start_times(settings: Settings, sandboxed: bool, repeat: int) -> list[float]:
    policy = policy_for(settings) if sandboxed else None
    times = []
    for i in range(repeat):
        workspace = Workspace(settings.workspaces / f"start-{sandboxed}-{i}").ensure().root
        t = time.perf_counter()
        session = await KernelSession.start(workspace, settings.kernel_memory_bytes, policy)
        times.append(time.perf_counter() - t)
        await session.shutdown()
    return times


async def _first_output(settings: Settings, store: LocalDatasetStore, warm: bool, i: int) -> float:
    executor = LocalKernelExecutor(dataclasses.replace(settings, warm_kernels=1 if warm else 0))
    agent = LocalKernelAgent(executor)
    try:
        if warm:
            await executor.warm_up()
        now = datetime.now(UTC)
        name = f"first-{warm}-{i}"
        conversation = Conversation(name, ThreadKey("console", "local", "bench", name), f"s-{name}", "bench",
                                    settings.workspaces / name, now, now)
        turn = Turn(conversation, "```python\nprint(1)\n```", (), Workspace(conversation.workspace).ensure(),
                    ThreadDatasets(store, conversation))
        t = time.perf_counter()
        async with aclosing(agent.run(turn)) as events:
            async for event in events:
                if isinstance(event, CodeOutput):
                    return time.perf_counter() - t
        raise RuntimeError("no output")
    finally:
        await agent.aclose()


async def _idle_memory(settings: Settings) -> tuple[int, int | None]:
    workspace = Workspace(settings.workspaces / "memory").ensure().root
    session = await KernelSession.start(workspace, settings.kernel_memory_bytes, policy_for(settings))
    try:
        await asyncio.sleep(1.0)
        assert session.pid is not None
        pss = sum(_pss(p) for p in [session.pid, *descendants(session.pid)])
        cgroup = session._cgroup
        usage = None
        if cgroup is not None:
            for folder in cgroup.dirs:
                path = folder / "memory.usage_in_bytes"
                if path.exists():
                    usage = int(path.read_text())
        return pss, usage
    finally:
        await session.shutdown()


def _ms(values: list[float]) -> str:
    low, mid, high = (round(v * 1000) for v in (min(values), statistics.median(values), max(values)))
    return f"median {mid} ms (min {low}, max {high})"


async def main(repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="dt-bench-") as tmp:
        settings = dataclasses.replace(Settings.from_env({"DATATHREAD_HOME": tmp}), kernel_sandbox=True)
        store = LocalDatasetStore(settings.datasets)
        try:
            plain = await _start_times(settings, False, repeat)
            boxed = await _start_times(settings, True, repeat)
            print(f"kernel start, unsandboxed: {_ms(plain)}")
            print(f"kernel start, sandboxed:   {_ms(boxed)}")
            print(f"sandbox overhead: {(statistics.median(boxed) - statistics.median(plain)) * 1000:+.0f} ms")
            cold = [await _first_output(settings, store, False, i) for i in range(repeat)]
            warm = [await _first_output(settings, store, True, i) for i in range(repeat)]
            print(f"first output of print(1), new conversation, cold: {_ms(cold)}")
            print(f"first output of print(1), new conversation, warm: {_ms(warm)}")
            pss, usage = await _idle_memory(settings)
            cg = f", memory cgroup usage {usage / 2**20:.0f} MiB" if usage is not None else ""
            print(f"idle sandboxed kernel: PSS {pss / 2**20:.0f} MiB{cg}")
        finally:
            await store.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    asyncio.run(main(parser.parse_args().repeat))
