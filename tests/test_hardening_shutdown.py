"""SIGTERM on a real ``datathread serve``: the running turn ends with its "Stopped" note, the 👀
reaction goes, and the process exits within the grace period.

``datathread serve`` runs as a subprocess with the local kernel (the default agent) against the
local Slack fake; the turn is user code that sleeps.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.slack_api import FakeSlack, event_body, signed_headers
from tests.slack_harness import SIGNING_SECRET, mention, until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
CHANNEL = "C0CHAN"
SLOW_CODE = "```python\nimport time\nprint('nap' + 'ping', flush=True)\ntime.sleep(120)\n```"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    f = await FakeSlack().start()
    yield f
    await f.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_sigterm_stops_the_running_turn_cleanly_and_exits_within_the_grace_period(
        fake: FakeSlack, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLACK_BOT_TOKEN": fake.token,
           "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.api_url,
           "DATATHREAD_HOME": str(tmp_path / "home"), "DATATHREAD_SHUTDOWN_GRACE_SECONDS": "15"}
    env.pop("DATATHREAD_AGENT", None)
    log = (tmp_path / "serve.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
        env=env, cwd=ROOT, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async def up() -> bool:
                try:
                    async with http.get(base + "/healthz") as r:
                        return r.status == 200 and (await r.json())["status"] == "ok"
                except aiohttp.ClientError:
                    return False

            for _ in range(300):
                if await up():
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("serve never became healthy: " + (tmp_path / "serve.log").read_text())

            ts = "1700010000.000100"
            body = json.dumps(event_body(mention(SLOW_CODE, ts), "EvT1"))
            async with http.post(base + "/slack/events", data=body.encode(),
                                 headers={"Content-Type": "application/json",
                                          **signed_headers(SIGNING_SECRET, body)}) as r:
                assert r.status == 200
            await until(lambda: any("napping" in fake.shown(m) for m in fake.thread(CHANNEL, ts)), limit=60,
                        what="the sleeping code's output in the live message")
            assert fake.named("reactions.add")

            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 30)
            took = time.monotonic() - sent
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
    print(f"SIGTERM -> exit: {took:.2f} s")
    assert code == 0
    assert took < 15
    live = [m for m in fake.thread(CHANNEL, ts) if "napping" in fake.shown(m)]
    assert live and "Stopped" in fake.shown(live[-1])
    assert not live[-1].streaming  # the stream was closed
    removed = fake.named("reactions.remove")
    assert removed and removed[-1].args.get("timestamp") == ts
