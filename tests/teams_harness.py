"""Shared setup for Teams end-to-end tests: the real CloudAdapter on /api/messages, the engine
with a scripted agent, and the fake Bot Connector the activities' ``serviceUrl`` points at."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from adapters.teams.inbound import thread_key
from adapters.teams.wiring import mount
from bot.agents.backend import AgentBackend
from bot.aws.setup import ensure_resources
from bot.composition import build_engine
from bot.config import Settings
from bot.conversation import Turn
from bot.engine import Engine
from tests.fakes import moto_aws
from tests.fakes.bot_connector import Call, FakeBotConnector
from tests.fakes.scripted_agent import ScriptedAgent, Step

FIXTURES = Path(__file__).parent / "fixtures" / "teams"
LOCAL = {"DATATHREAD_TEAMS_ALLOW_UNAUTHENTICATED": "1", "DATATHREAD_PUBLIC_URL": "http://files.example.test"}


def fixture(name: str, **changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    for key, value in changes.items():
        raw[key] = value
    return raw


@dataclass
class TeamsHarness:
    client: TestClient[web.Request, web.Application]
    connector: FakeBotConnector
    engine: Engine
    agent: ScriptedAgent

    async def post(self, activity: dict[str, Any], headers: dict[str, str] | None = None) -> ClientResponse:
        body = copy.deepcopy(activity)
        body["serviceUrl"] = self.connector.url
        return await self.client.post("/api/messages", json=body, headers=headers)

    def to(self, conversation: str) -> list[Call]:
        return [c for c in self.connector.calls if unquote(c.conversation) == conversation]

    async def until(self, predicate: Callable[[list[Call]], Any], within: float = 10.0) -> Any:
        return await self.connector.wait_for(predicate, within)

    async def turn_done(self, conversation: str, within: float = 10.0) -> list[Call]:
        """Wait until a message in ``conversation`` shows a finished turn; its calls."""

        def finished(_: list[Call]) -> list[Call] | None:
            calls = self.to(conversation)
            done = any(("✅" in (c.body.get("text") or "") or "❌" in (c.body.get("text") or ""))
                       and c.body.get("type") == "message" for c in calls)
            return calls if done else None

        return await self.until(finished, within)


@asynccontextmanager
async def teams(
    tmp_path: Path, script: Callable[[Turn], Sequence[Step]], env: dict[str, str] | None = None,
    *, connector: FakeBotConnector | None = None, agent: Callable[[Settings], AgentBackend] | None = None,
    **settings_env: str,
) -> AsyncIterator[TeamsHarness]:
    """One Teams bot; ``connector`` shares a fake Bot Connector between several (replicas),
    ``settings_env`` also builds the engine's stores (``DATATHREAD_STORE=aws`` and its variables),
    and ``agent`` makes another backend than the scripted one (the local kernel agent)."""
    own = connector is None
    connector = connector or await FakeBotConnector().start()
    engine_env = {"DATATHREAD_HOME": str(tmp_path / "home"), **settings_env}
    settings = Settings.from_env(engine_env)
    agent = cast(ScriptedAgent, agent(settings)) if agent is not None else ScriptedAgent(script)
    engine = build_engine(settings, agent=agent, env=engine_env)
    app = web.Application()
    assert await mount(app, engine, settings, LOCAL if env is None else env)
    app.on_cleanup.append(lambda _: engine.aclose())
    client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    try:
        yield TeamsHarness(client, connector, engine, agent)
    finally:
        await client.close()
        if own:
            await connector.close()


@asynccontextmanager
async def teams_replicas(
    tmp_path: Path, script: Callable[[Turn], Sequence[Step]], count: int = 2,
    agent: Callable[[Settings], AgentBackend] | None = None, runners: Sequence[int] | None = None,
) -> AsyncIterator[list[TeamsHarness]]:
    """``count`` Teams bots (replicas, each with its own home) sharing one fake Bot Connector and
    fresh DynamoDB / S3 / SQS resources on moto's server. The replicas in ``runners`` (all by
    default) run turns from the queue; the others only take activities in."""
    moto = moto_aws.shared()
    aws = moto.fresh_settings()
    ensure_resources(moto.clients(), aws)
    env = moto.mode_env(aws)
    connector = await FakeBotConnector().start()
    try:
        async with contextlib.AsyncExitStack() as stack:
            bots = [await stack.enter_async_context(
                teams(tmp_path / f"replica{i}", script, connector=connector, agent=agent, **env)) for i in range(count)]
            for i, bot in enumerate(bots):
                if runners is None or i in runners:
                    bot.engine.start()
            yield bots
    finally:
        await connector.close()


def stop_token(h: TeamsHarness, conversation: str) -> tuple[str, str] | None:
    """The Stop button's token on the turn message, and that message's id."""
    for c in h.to(conversation):
        for attachment in c.body.get("attachments") or ():
            for action in (attachment.get("content") or {}).get("actions") or ():
                if (action.get("data") or {}).get("datathread") == "stop":
                    return action["data"]["token"], c.activity_id or c.returned_id
    return None


def queue_settled(h: TeamsHarness) -> bool:
    """No turn waits in or is being handled from the shared queue (every received one was deleted):
    a replica's workers can be stopped without cutting a turn's last step."""
    sqs = moto_aws.shared().clients().sqs
    url = h.engine.intake.queue_url  # type: ignore[union-attr]
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(got["ApproximateNumberOfMessages"]) + int(got["ApproximateNumberOfMessagesNotVisible"]) == 0



async def on_record(read: Callable[[], Awaitable[str | None]], within: float = 10.0) -> str:
    """Wait until ``read()`` finds a record (written just after the Bot Connector took the message
    it is about, so a test that restarts must wait for it); what it found."""
    deadline = time.monotonic() + within
    while not (found := await read()):
        assert time.monotonic() < deadline, "timed out waiting for the record"
        await asyncio.sleep(0.02)
    return found


async def card_recorded(h: TeamsHarness, activity: dict[str, Any], token: str) -> str:
    """The id of the card carrying ``token`` in ``activity``'s thread, once it is on record."""
    return await on_record(lambda: h.engine.message_records.card_with(thread_key(activity), token))


async def turn_recorded(h: TeamsHarness, activity: dict[str, Any], message_id: str) -> str:
    """The turn message ``message_id`` of ``activity``'s thread answers, once it is on record."""
    return await on_record(lambda: h.engine.message_records.turn_of(thread_key(activity), message_id))
