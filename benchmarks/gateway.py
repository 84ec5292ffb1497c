"""Gateway round-trip overhead: one ``print(1)`` run on a Jupyter Enterprise Gateway kernel vs a local one.

    JUPYTER_GATEWAY_URL=http://127.0.0.1:8888 [JUPYTER_GATEWAY_AUTH_TOKEN=…] [JUPYTER_GATEWAY_KERNEL_NAME=…] \\
        python -m benchmarks.gateway [--runs 25]

Each executor gets one conversation whose kernel is started (and warmed by one run) before timing;
then ``--runs`` runs of ``print(1)`` are timed from ``execute`` to its ``CodeOutput`` (first output)
and to the end of its events (the whole run: on the gateway this includes the look for new files
after the run). The local kernel runs unsandboxed, as ``datathread chat`` runs it, so the figure is
the transport's cost, not the sandbox's. Medians, and the ratio gateway / local. Then the time to
copy a 20 MB file into the gateway kernel (an attachment) and one back (a file the code wrote), over
the same run without a file.

A gateway for a try on one machine (its own virtualenv: ``pip install jupyter_enterprise_gateway``)::

    EG_UNAUTHORIZED_USERS=nobody jupyter enterprisegateway --ip=127.0.0.1 --port=8888
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from contextlib import aclosing
from pathlib import Path

from bot.agents.gateway.executor import GatewayExecutor
from bot.agents.kernel.agent import KernelExecutor, LocalKernelExecutor
from bot.config import ConfigError, Settings
from bot.conversation import Turn
from bot.datasets.local import LocalDatasetStore
from bot.datasets.registrar import ThreadDatasets
from bot.events import CodeOutput
from bot.messages import ThreadKey
from bot.storage.local import SqliteStateStore
from bot.workspace import Workspace


async def _copy_times(executor: KernelExecutor, turn: Turn) -> tuple[float, float]:
    async def run(code: str) -> float:
        t = time.perf_counter()
        async with aclosing(executor.execute(turn, code)) as events:
            async for _ in events:
                pass
        return time.perf_counter() - t

    empty = await run("print(1)")
    (turn.workspace.root / "in.bin").write_bytes(os.urandom(20_000_000))
    push = await run("print(1)") - empty
    pull = await run("open('out.bin', 'wb').write(__import__('os').urandom(20_000_000))") - empty
    return push, pull


async def _times(executor: KernelExecutor, turn: Turn, runs: int) -> tuple[list[float], list[float]]:
    first, whole = [], []
    for i in range(runs + 1):  # the first run starts the kernel: not timed
        t = time.perf_counter()
        seen: float | None = None
        async with aclosing(executor.execute(turn, "print(1)")) as events:
            async for event in events:
                if isinstance(event, CodeOutput) and seen is None:
                    seen = time.perf_counter() - t
        if i and seen is not None:
            first.append(seen)
            whole.append(time.perf_counter() - t)
    return first, whole


def _ms(values: list[float]) -> str:
    low, mid, high = (v * 1000 for v in (min(values), statistics.median(values), max(values)))
    return f"median {mid:.1f} ms (min {low:.1f}, max {high:.1f})"


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="dt-bench-gw-") as tmp:
        try:
            settings = Settings.from_env({**os.environ, "DATATHREAD_HOME": tmp, "DATATHREAD_EXECUTOR": "gateway"})
        except ConfigError as exc:
            raise SystemExit(f"benchmarks.gateway needs a gateway: {exc}") from None
        assert settings.gateway is not None
        state = SqliteStateStore(Path(tmp) / "state.sqlite3", settings.workspaces)
        store = LocalDatasetStore(settings.datasets)
        results = {}
        push = pull = 0.0
        for label in ("local", "gateway"):
            conversation = await state.start_conversation(ThreadKey("console", "local", "bench", label), "bench")
            turn = Turn(conversation, "print(1)", (), Workspace(conversation.workspace).ensure(),
                        ThreadDatasets(store, conversation))
            executor: KernelExecutor = (
                LocalKernelExecutor(settings) if label == "local"
                else GatewayExecutor(settings, settings.gateway, state))
            try:
                results[label] = await _times(executor, turn, runs)
                if label == "gateway":
                    push, pull = await _copy_times(executor, turn)
            finally:
                await executor.release(conversation)
                await executor.aclose()
        await store.aclose()
        await state.aclose()
    for label, (first, whole) in results.items():
        print(f"{label:8} print(1), first output: {_ms(first)}; whole run: {_ms(whole)}")
    for i, what in enumerate(("first output", "whole run")):
        local, remote = (statistics.median(results[k][i]) for k in ("local", "gateway"))
        print(f"gateway overhead per run, {what}: {(remote - local) * 1000:+.1f} ms, ratio gateway/local "
              f"{remote / local:.1f}x")
    print(f"20 MB file copied into the gateway kernel: {push:.2f} s ({20 / push:.0f} MB/s); "
          f"back from it: {pull:.2f} s ({20 / pull:.0f} MB/s)")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=25)
    asyncio.run(main(parser.parse_args().runs))
