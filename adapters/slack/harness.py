"""The real Slack adapter (bolt app on a real aiohttp server) wired to the fake Web API.

Shared by the Slack end-to-end tests (through ``tests/slack_harness.py``) and
``benchmarks/slack_turns.py``; it lives here because benchmarks must not depend on ``tests/``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.slack.fake_web_api import FakeSlack, action_body, event_body, signed_headers
from adapters.slack.wiring import ADAPTER_KEY, SlackAdapter, mount
from bot.agents.backend import AgentBackend
from bot.composition import build_engine
from bot.config import Settings
from bot.engine import Engine

SIGNING_SECRET = "test-signing-secret-0123456789"


async def until(predicate: Callable[[], bool], limit: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it holds; fail after ``limit`` seconds naming ``what``."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class SlackBot:
    """Engine + Slack adapter served on 127.0.0.1; ``send`` / ``click`` post signed requests."""

    def __init__(self, fake: FakeSlack, home: Path, agent: AgentBackend, *, web: bool = False, **env: str) -> None:
        self.fake, self.home, self.agent, self.web = fake, home, agent, web
        self.env = {"SLACK_BOT_TOKEN": fake.token, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                    "SLACK_API_URL": fake.api_url, "DATATHREAD_HOME": str(home), **env}
        self.engine: Engine | None = None
        self.server: TestServer | None = None
        self.http: aiohttp.ClientSession | None = None

    async def start(self) -> SlackBot:
        settings = Settings.from_env(self.env)
        self.engine = build_engine(settings, agent=self.agent, env=self.env)
        app = web.Application()
        assert await mount(app, self.engine, settings, self.env)
        self.adapter: SlackAdapter = app[ADAPTER_KEY]  # type: ignore[assignment]
        if self.web:  # the browser's workspace view, on the same server as ``datathread serve`` does
            from adapters.web.wiring import mount as mount_web

            mount_web(app, self.engine)
        self.server = TestServer(app, host="127.0.0.1", port=0)
        await self.server.start_server()
        if self.web:
            self.engine.web.serve_at(str(self.server.make_url("/")))
        self.http = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        """Idempotent: close the client, the server (and adapter), then the engine."""
        http, server, engine = self.http, self.server, self.engine
        self.http = self.server = self.engine = None
        if http:
            await http.close()
        if server:
            await server.close()
        if engine:
            await engine.aclose()

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/slack/events"))

    async def post(self, body: str, content_type: str, headers: dict[str, str]) -> int:
        assert self.http is not None
        async with self.http.post(self.url, data=body.encode(), headers={"Content-Type": content_type, **headers}) \
                as resp:
            await resp.read()
            return resp.status

    async def send(self, event: dict[str, Any], event_id: str, *, secret: str = SIGNING_SECRET,
                   timestamp: int | None = None, headers: dict[str, str] | None = None) -> int:
        body = json.dumps(event_body(event, event_id))
        return await self.post(body, "application/json", signed_headers(secret, body, timestamp, **(headers or {})))

    async def click(self, action: dict[str, Any], *, user: str, channel: str, message_ts: str,
                    thread_ts: str | None, ephemeral: bool = False) -> int:
        from urllib.parse import urlencode

        payload = action_body(action, user=user, channel=channel, message_ts=message_ts, thread_ts=thread_ts,
                              ephemeral=ephemeral)
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post(body, "application/x-www-form-urlencoded", signed_headers(SIGNING_SECRET, body))


def mention(text: str, ts: str, *, user: str = "UALICE", channel: str = "C0CHAN", thread_ts: str | None = None,
            kind: str = "app_mention", **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"type": kind, "text": f"<@UBOT> {text}", "user": user, "ts": ts, "channel": channel,
                             "event_ts": ts, "team": "T0001", **extra}
    if kind == "message":
        event.setdefault("channel_type", "channel")
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def message(text: str, ts: str, *, user: str = "UALICE", channel: str = "C0CHAN", thread_ts: str | None = None,
            channel_type: str = "channel", **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "message", "text": text, "user": user, "ts": ts, "channel": channel,
                             "event_ts": ts, "channel_type": channel_type, **extra}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event
