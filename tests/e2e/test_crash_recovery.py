"""Item 3b of issue 17: a ``datathread serve`` killed with SIGKILL mid-turn leaves no turn silent.

A real ``serve`` subprocess (the local kernel, the default agent) against the local Slack fake runs
code that sleeps; it is killed with SIGKILL and started again on the same home. The restart ends the
turn's live message with the "interrupted" note and removes the 👀 reaction; Slack's redelivery of
the same event is then run (it is not dropped as a duplicate of a turn that never finished).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import IO

import aiohttp
import pytest

from adapters.local_server import free_port
from tests.fakes.slack_api import FakeSlack, event_body, signed_headers
from tests.slack_harness import SIGNING_SECRET, mention, until

pytestmark = pytest.mark.e2e  # runs serve subprocesses and kernels

ROOT = Path(__file__).resolve().parents[2]
CHANNEL = "C0CHAN"
TS = "1700020000.000100"
INTERRUPTED = "Interrupted by a restart — send your message again."
SLOW_CODE = "```python\nimport time\nprint('nap' + 'ping', flush=True)\ntime.sleep(120)\n```"






async def serve(fake: FakeSlack, home: Path, port: int, log: IO[bytes]) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLACK_BOT_TOKEN": fake.token,
           "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.api_url, "DATATHREAD_HOME": str(home)}
    env.pop("DATATHREAD_AGENT", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
        env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True)
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200 and (await r.json())["status"] == "ok":
                        return proc
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("serve never became healthy")


async def deliver(port: int, event: dict[str, object], event_id: str, **headers: str) -> int:
    body = json.dumps(event_body(event, event_id))
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}/slack/events", data=body.encode(),
            headers={"Content-Type": "application/json", **signed_headers(SIGNING_SECRET, body), **headers}) as r:
        return r.status


def kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the serve process and everything it started (its kernels), as an OOM kill would."""
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(proc.pid, signal.SIGKILL)


async def test_a_turn_cut_off_by_sigkill_is_ended_with_a_note_at_restart_and_its_redelivery_runs(
        fake: FakeSlack, tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    procs: list[asyncio.subprocess.Process] = []
    with (tmp_path / "serve.log").open("wb") as log:
        try:
            procs.append(await serve(fake, home, port, log))
            assert await deliver(port, mention(SLOW_CODE, TS), "EvKill1") == 200
            await until(lambda: any("napping" in fake.shown(m) for m in fake.thread(CHANNEL, TS)), limit=60,
                        what="the sleeping code's output in the live message")
            (live,) = [m for m in fake.thread(CHANNEL, TS) if "napping" in fake.shown(m)]
            kill_group(procs[0])
            await procs[0].wait()
            removed_before = len(fake.named("reactions.remove"))

            procs.append(await serve(fake, home, port, log))  # healthy only once the clean-up ran
            assert INTERRUPTED in fake.shown(live) and "napping" not in fake.shown(live)
            removed = fake.named("reactions.remove")[removed_before:]
            assert [c.args.get("timestamp") for c in removed] == [TS]

            # Slack redelivers the event the crash left unanswered: it runs as a new turn.
            assert await deliver(port, mention(SLOW_CODE, TS), "EvKill1", **{"X-Slack-Retry-Num": "1"}) == 200
            await until(lambda: any("napping" in fake.shown(m) for m in fake.thread(CHANNEL, TS) if m is not live),
                        limit=60, what="the redelivered message running")
        finally:
            for proc in procs:
                kill_group(proc)
                await proc.wait()
