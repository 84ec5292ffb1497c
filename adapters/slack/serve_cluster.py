"""Several real ``datathread serve`` processes on loopback, sharing one Slack API and one AWS account.

Each replica is ``python -m bot.cli serve`` with its own home folder and port, the environment
given (``DATATHREAD_STORE=aws`` and boto3's endpoint variables point them at the same DynamoDB,
S3 and SQS), and the Slack variables of the fake Web API. ``send`` and ``click`` post signed
requests to the replica named, as a load balancer would. Shared by the multi-process tests and
``benchmarks/scale_out.py``; it lives here because benchmarks must not depend on ``tests/``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from adapters.local_server import free_port
from adapters.slack.fake_web_api import FakeSlack, action_body, event_body, signed_headers
from adapters.slack.harness import SIGNING_SECRET

ROOT = Path(__file__).resolve().parents[2]
#: The log line each replica writes once its workers take turns (``bot.aws.turn_queue``).
TAKES_TURNS = re.compile(r"replica (\w+) takes turns")


@dataclass
class ServeCluster:
    """``count`` serve processes; ``replica_of`` maps a replica's id (as turn records name it) to its index."""

    fake: FakeSlack
    root: Path
    env: Mapping[str, str]
    count: int = 3
    ports: list[int] = field(default_factory=list)
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    replica_of: dict[str, int] = field(default_factory=dict)
    http: aiohttp.ClientSession | None = None

    async def start(self, within: float = 90.0) -> ServeCluster:
        """Start every replica and wait until each answers ``/healthz`` and takes turns."""
        self.http = aiohttp.ClientSession()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("DATATHREAD_", "AWS_", "SLACK_"))}
        for i in range(self.count):
            port = free_port()
            env = {**base, "PYTHONPATH": str(ROOT), "SLACK_BOT_TOKEN": self.fake.token,
                   "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": self.fake.api_url,
                   "DATATHREAD_HOME": str(self.root / f"home{i}"), **self.env}
            log = self.root / f"serve{i}.log"
            self.procs.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                env=env, cwd=ROOT, stdout=log.open("wb"), stderr=asyncio.subprocess.STDOUT))
            self.ports.append(port)
            self.logs.append(log)
        deadline = asyncio.get_running_loop().time() + within
        for i in range(self.count):
            while not (await self._healthy(i) and TAKES_TURNS.search(self.logs[i].read_text())):
                if self.procs[i].returncode is not None or asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(f"replica {i} did not start:\n{self.logs[i].read_text()}")
                await asyncio.sleep(0.1)
            found = TAKES_TURNS.search(self.logs[i].read_text())
            assert found is not None
            self.replica_of[found.group(1)] = i
        return self

    async def _healthy(self, i: int) -> bool:
        assert self.http is not None
        try:
            async with self.http.get(f"http://127.0.0.1:{self.ports[i]}/healthz") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    async def _post(self, i: int, body: str, content_type: str) -> int:
        assert self.http is not None
        async with self.http.post(f"http://127.0.0.1:{self.ports[i]}/slack/events", data=body.encode(),
                                  headers={"Content-Type": content_type, **signed_headers(SIGNING_SECRET, body)}) as r:
            await r.read()
            return r.status

    async def send(self, i: int, event: dict[str, Any], event_id: str) -> int:
        """Deliver a Slack event (a mention, a message; a retry is the same ``event_id``) to replica ``i``."""
        return await self._post(i, json.dumps(event_body(event, event_id)), "application/json")

    async def click(self, i: int, action: dict[str, Any], *, user: str, channel: str, message_ts: str,
                    thread_ts: str | None) -> int:
        """Deliver a button click on the bot message ``message_ts`` to replica ``i``."""
        payload = action_body(action, user=user, channel=channel, message_ts=message_ts, thread_ts=thread_ts)
        return await self._post(i, urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    async def kill(self, i: int) -> None:
        """``kill -9`` replica ``i``: no shutdown, no clean-up, its turns cut off mid-way."""
        self.procs[i].send_signal(signal.SIGKILL)
        await self.procs[i].wait()

    def alive(self) -> list[int]:
        return [i for i, p in enumerate(self.procs) if p.returncode is None]

    def log_text(self) -> str:
        return "\n".join(f"--- replica {i} ---\n{p.read_text()}" for i, p in enumerate(self.logs))

    async def stop(self) -> None:
        """Stop every replica still running (SIGTERM, then SIGKILL after 10 s) and close the client."""
        for proc in self.procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self.http is not None:
            await self.http.close()
