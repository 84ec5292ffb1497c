"""Flood benchmark: six concurrent unsigned 60 MB POSTs to ``/slack/events`` of a real ``datathread serve``.

    python -m benchmarks.edge_flood [--tree PATH] [--posts 6] [--mb 60]

Starts the local Slack fake in this process and ``datathread serve`` as a subprocess (loopback
only) with ``PYTHONPATH=--tree`` (default: this checkout), sends ``--posts`` concurrent unsigned
bodies of ``--mb`` MB once (a bounded loop), and reports: the statuses, the worst ``/healthz``
latency while they run (polled every 50 ms), the server's peak RSS (``/proc/<pid>/status``), and
how many bytes the server wrote to its log.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from adapters.slack.fake_web_api import FakeSlack


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(tree: Path, env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """``datathread serve`` from ``tree`` on 127.0.0.1:``port``, its output into ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port",
                                 str(port)], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tree)


async def run(tree: Path, posts: int, mb: int) -> None:
    fake = await FakeSlack().start()
    port = free_port()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "PYTHONPATH": str(tree), "SLACK_BOT_TOKEN": fake.token,
               "SLACK_SIGNING_SECRET": "bench-secret", "SLACK_API_URL": fake.api_url, "DATATHREAD_HOME": home}
        proc = launch(tree, env, port, Path(home) / "serve.log")
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as http:
                for _ in range(200):
                    try:
                        async with http.get(base + "/healthz") as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.05)
                idle_rss = rss_mb(proc.pid)
                body = b"x" * (mb * 1024 * 1024)
                peak, worst, done = idle_rss, 0.0, False

                async def flood() -> list[int | str]:
                    async def one() -> int | str:
                        try:
                            async with http.post(base + "/slack/events", data=body,
                                                 headers={"Content-Type": "application/json"}) as r:
                                await r.read()
                                return r.status
                        except aiohttp.ClientError as exc:  # the server may close on an early 413
                            return type(exc).__name__
                    return list(await asyncio.gather(*(one() for _ in range(posts))))

                async def watch() -> None:
                    nonlocal peak, worst
                    while not done:
                        started = time.monotonic()
                        async with http.get(base + "/healthz") as r:
                            await r.read()
                        worst = max(worst, time.monotonic() - started)
                        peak = max(peak, rss_mb(proc.pid))
                        await asyncio.sleep(0.05)

                watcher = asyncio.ensure_future(watch())
                began = time.monotonic()
                statuses = await flood()
                elapsed = time.monotonic() - began
                done = True
                await watcher
        finally:
            proc.terminate()
            proc.wait(30)
            await fake.close()
        log_bytes = (Path(home) / "serve.log").stat().st_size
    print(f"tree: {tree}")
    print(f"{posts} x {mb} MB unsigned POSTs -> {statuses} in {elapsed:.2f} s")
    print(f"/healthz worst latency during the flood: {worst * 1000:.0f} ms")
    print(f"server RSS: idle {idle_rss:.0f} MB, peak {peak:.0f} MB")
    print(f"server log: {log_bytes} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--posts", type=int, default=6)
    parser.add_argument("--mb", type=int, default=60)
    args = parser.parse_args()
    asyncio.run(run(args.tree.resolve(), args.posts, args.mb))


if __name__ == "__main__":
    main()
