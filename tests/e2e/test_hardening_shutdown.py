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
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from adapters.local_server import free_port
from bot import events as ev
from bot.composition import build_engine
from bot.config import Settings
from bot.conversation import Turn
from bot.messages import IncomingMessage, ThreadKey
from tests.fakes.scripted_agent import ScriptedAgent, Sleep, Step
from tests.fakes.slack_api import FakeSlack, event_body, signed_headers
from tests.slack_harness import SIGNING_SECRET, mention, until
from tests.surfaces import RecordingSurface

ROOT = Path(__file__).resolve().parent.parent
CHANNEL = "C0CHAN"
SLOW_CODE = "```python\nimport time\nprint('nap' + 'ping', flush=True)\ntime.sleep(120)\n```"






@pytest.mark.e2e
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


def notes(reply: object) -> str:
    return " ".join(str(getattr(b, "text", "")) for b in getattr(reply, "blocks", ()))


async def test_shutdown_stops_running_turns_tells_waiting_messages_and_refuses_new_ones(tmp_path: Path) -> None:
    def script(turn: Turn) -> list[Step]:
        return [ev.Rationale("Working on it. "), Sleep(30), ev.FinalText("never")]

    env = {"DATATHREAD_HOME": str(tmp_path)}
    engine = build_engine(Settings.from_env(env), agent=ScriptedAgent(script), env=env)
    thread = ThreadKey("console", "local", "me", "t1")
    running, waiting, late = RecordingSurface(), RecordingSurface(), RecordingSurface()
    try:
        first = engine.submit(IncomingMessage(thread, "me", "slow", event_id="m1"), running)
        second = engine.submit(IncomingMessage(thread, "me", "next", event_id="m2"), waiting)
        await until(lambda: bool(running.of("live.start")), what="the first turn running")
        began = time.monotonic()
        await engine.shutdown(grace=10)
        assert time.monotonic() - began < 5
        assert engine.accepting is False
        await asyncio.wait_for(asyncio.gather(first, second), 5)
        assert "Stopped" in notes(running.of("live.finish")[-1].reply)
        assert running.of("status")[-1].text is None  # the working status is cleared
        assert "Send it again" in notes(waiting.of("post")[-1].reply)
        await asyncio.wait_for(engine.submit(IncomingMessage(thread, "me", "late", event_id="m3"), late), 5)
        assert "Send it again" in notes(late.of("post")[-1].reply) and not late.of("live.start")
    finally:
        await engine.aclose()
