"""``kill -9`` of a ``datathread serve`` replica in the middle of a turn (AWS mode on moto): the
turn is not lost without a word and not answered twice — the replica that receives it next ends
it with the "interrupted" note — and the surviving replica keeps answering.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.aws.setup import ensure_resources
from bot.aws.turn_queue import INTERRUPTED
from tests.fakes import moto_aws
from tests.fakes.slack_api import FakeSlack, event_body, signed_headers
from tests.slack_harness import SIGNING_SECRET, mention, message, until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CHANNEL = "C0CHAN"
SLOW_CODE = "```python\nimport time\nprint('nap' + 'ping', flush=True)\ntime.sleep(120)\n```"




async def post_event(http: aiohttp.ClientSession, port: int, event: dict[str, object], event_id: str) -> int:
    body = json.dumps(event_body(event, event_id))
    async with http.post(f"http://127.0.0.1:{port}/slack/events", data=body.encode(),
                         headers={"Content-Type": "application/json", **signed_headers(SIGNING_SECRET, body)}) as r:
        return r.status


async def test_a_replica_killed_mid_turn_leaves_one_interrupted_note_and_the_others_keep_answering(
        fake: FakeSlack, tmp_path: Path) -> None:
    moto = moto_aws.shared()
    aws = moto.fresh_settings()
    ensure_resources(moto.clients(), aws)
    procs, ports, logs = [], [], []
    for i in range(2):
        port = moto_aws.free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DATATHREAD_", "AWS_"))},
               **moto.mode_env(aws), "PYTHONPATH": str(ROOT), "SLACK_BOT_TOKEN": fake.token,
               "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.api_url,
               "DATATHREAD_HOME": str(tmp_path / f"home{i}")}
        log_path = tmp_path / f"serve{i}.log"
        procs.append(await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
            env=env, cwd=ROOT, stdout=log_path.open("wb"), stderr=asyncio.subprocess.STDOUT))
        ports.append(port)
        logs.append(log_path)
    try:
        async with aiohttp.ClientSession() as http:
            async def healthy(port: int) -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            for port in ports:
                for _ in range(600):
                    if await healthy(port):
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("a replica never became healthy: " + "\n".join(p.read_text() for p in logs))
            ids = [re.search(r"replica (\w+) takes turns", p.read_text()) for p in logs]
            assert all(ids), "\n".join(p.read_text() for p in logs)
            replica_of = {m.group(1): i for i, m in enumerate(ids) if m}

            ts = "1700020000.000100"
            assert await post_event(http, ports[1], mention(SLOW_CODE, ts), "EvK1") == 200
            await until(lambda: any("napping" in fake.shown(m) for m in fake.thread(CHANNEL, ts)), limit=90,
                        what="the slow turn's output")
            running = moto.clients().dynamodb.get_item(
                TableName=aws.table, Key={"pk": {"S": f"running#slack:T0001:{CHANNEL}:{ts}"}, "sk": {"S": "running"}},
                ConsistentRead=True)["Item"]
            victim = replica_of[running["replica"]["S"]]
            procs[victim].send_signal(signal.SIGKILL)
            await procs[victim].wait()
            survivor = 1 - victim

            await until(lambda: any(INTERRUPTED in fake.shown(m) for m in fake.thread(CHANNEL, ts)), limit=30,
                        what="the interrupted note")
            assert await post_event(http, ports[survivor], message("```python\nprint(6 * 7)\n```", "1700020001.000100",
                                                                    thread_ts=ts), "EvK2") == 200
            await until(lambda: any("42" in fake.shown(m) for m in fake.thread(CHANNEL, ts)), limit=90,
                        what="the next answer from the surviving replica")
            await asyncio.sleep(5)  # longer than a lease: a second delivery of the killed turn would show by now
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    shown = [fake.shown(m) for m in fake.thread(CHANNEL, ts)]
    assert sum(INTERRUPTED in s for s in shown) == 1
    assert sum("42" in s for s in shown) == 1
